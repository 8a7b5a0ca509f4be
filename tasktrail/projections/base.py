"""What every projection is: a name, the tables it owns, and how one event changes them.

The projector calls ``apply`` for each event of a batch inside ONE transaction that also
moves the projection's row in ``projection_positions``; so a crash never loses or doubles an
event. ``tables`` maps each logical table name to the table to write: the serving table
normally, its shadow copy during a blue/green rebuild. A projection may also offer
``apply_batch(connection, tables, events)``, equal in effect to ``apply`` for each event in
order but with fewer statements; the projector uses it when present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tasktrail.engine.log import LogEvent

# All read-side tables, for Alembic's comparison test and for rebuilds.
metadata = sa.MetaData()


def upsert_into(connection: sa.Connection, table: sa.Table) -> Any:
    """An INSERT into ``table`` that offers ``on_conflict_do_*`` on both backends."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    return insert(table)


class Projection(Protocol):
    name: str
    tables: Sequence[sa.Table]

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        """Change the rows of ``tables`` for one event (called in position order)."""
