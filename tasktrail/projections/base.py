"""What every projection is: a name, the tables it owns, and how one event changes them.

The projector calls ``apply`` for each event of a batch inside ONE transaction that also
moves the projection's row in ``projection_positions``; so a crash never loses or doubles an
event. ``tables`` maps each logical table name to the table to write: the serving table
normally, its shadow copy during a blue/green rebuild. A projection may also offer
``apply_batch(connection, tables, events)``, equal in effect to ``apply`` for each event in
order but with fewer statements; the projector uses it when present.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tasktrail.engine.log import LogEvent

# All read-side tables, for Alembic's comparison test and for rebuilds.
metadata = sa.MetaData()


def upsert_into(connection: sa.Connection, table: sa.Table) -> Any:
    """An INSERT into ``table`` that offers ``on_conflict_do_*`` on both backends."""
    return upsert_for(table, postgres=connection.dialect.name == "postgresql")


def upsert_for(table: sa.Table, *, postgres: bool) -> Any:
    """``upsert_into`` for a statement built before any connection (to be cached)."""
    return (postgresql.insert if postgres else sqlite.insert)(table)


class Projection(Protocol):
    name: str
    tables: Sequence[sa.Table]

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        """Change the rows of ``tables`` for one event (called in position order)."""


# -- many rows in one statement ------------------------------------------------------------
#
# An executemany sends one statement per row, and each row costs SQLAlchemy and psycopg
# CPU (parameters built, dumped, a statement queued): for the projector, which writes a few
# rows per task, that was most of its time. On PostgreSQL the rows go instead as ONE JSON
# document, unpacked by ``json_to_recordset`` into typed columns: one statement of a fixed
# text whatever the row count (built, compiled and prepared once), and one parameter that
# the json module's C encoder writes (psycopg's array dumpers, tried first, are Python and
# cost more than they saved). SQLite keeps executemany, which is cheap in-process.


def insert_rows(
    connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT ``rows`` (which all have the same keys) into ``table``."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    columns = tuple(sorted(rows[0]))
    connection.execute(_recordset_insert(table, columns), {"batch": _document(rows)})


def update_rows(
    connection: sa.Connection, table: sa.Table, key: str, rows: Sequence[Mapping[str, Any]]
) -> None:
    """UPDATE each row of ``table`` whose ``key`` column equals a row's ``key`` value, to
    that row's other values (the rows all have the same keys)."""
    if not rows:
        return
    columns = tuple(sorted(c for c in rows[0] if c != key))
    if connection.dialect.name != "postgresql":
        # The SET clause comes from the rows' other keys.
        by_key = table.update().where(table.c[key] == sa.bindparam("row_key"))
        connection.execute(
            by_key, [{**{c: row[c] for c in columns}, "row_key": row[key]} for row in rows]
        )
        return
    connection.execute(_recordset_update(table, key, columns), {"batch": _document(rows)})


def one_of(column: sa.Column[Any], name: str, postgres: bool) -> Any:
    """``column IN (:name)``, the list bound at execution: on PostgreSQL ``= ANY`` of one
    array (one fixed text, whatever the list's length), elsewhere an expanding IN."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def _document(rows: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(rows, default=_json_value, separators=(",", ":"))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"no JSON form for a {type(value).__name__} in a row")


def _recordset(table: sa.Table, columns: Sequence[str]) -> Any:
    """``json_to_recordset(:batch) AS batch(a type_a, b type_b, ...)``, typed as the table."""
    document = sa.cast(sa.bindparam("batch", type_=sa.Text), postgresql.JSON)
    typed = [sa.column(column, table.c[column].type) for column in columns]
    recordset = sa.func.json_to_recordset(document).table_valued(*typed)
    return recordset.render_derived(name="batch", with_types=True)


@lru_cache(maxsize=128)
def _recordset_insert(table: sa.Table, columns: tuple[str, ...]) -> sa.Insert:
    rows = _recordset(table, columns)
    return table.insert().from_select(list(columns), sa.select(*[rows.c[c] for c in columns]))


@lru_cache(maxsize=128)
def _recordset_update(table: sa.Table, key: str, columns: tuple[str, ...]) -> sa.Update:
    rows = _recordset(table, (key, *columns))
    return (
        table.update()
        .where(table.c[key] == rows.c[key])
        .values({column: rows.c[column] for column in columns})
    )
