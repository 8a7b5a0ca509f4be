"""The tracking table: for each projection, the position of the last event applied to it.

A projection's row changes and its position move in one transaction, and the row is locked
for that transaction (``FOR UPDATE`` on PostgreSQL; SQLite transactions begin IMMEDIATE, so
they hold the database's write lock), so two appliers never apply the same event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import sqlalchemy as sa

from tasktrail.projections.base import metadata, upsert_into

projection_positions = sa.Table(
    "projection_positions",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
)


def ensure(connection: sa.Connection, names: Iterable[str]) -> None:
    """Give each named projection a row at position 0 unless it has one."""
    rows = [{"name": name, "position": 0} for name in names]
    if not rows:
        return
    connection.execute(upsert_into(connection, projection_positions).on_conflict_do_nothing(), rows)


def lock(connection: sa.Connection, names: Iterable[str]) -> dict[str, int]:
    """The positions of ``names``, locked until the transaction ends (rows made if missing)."""
    wanted = sorted(set(names))
    found = _locked(connection, wanted)
    if len(found) < len(wanted):  # only the first time: the insert is compiled each call
        ensure(connection, [name for name in wanted if name not in found])
        found = _locked(connection, wanted)
    return found


@cache
def _lock_statement(for_update: bool) -> sa.Select[Any]:
    # Built once: a statement built per call costs more CPU than the server spends on it.
    query = (
        sa.select(projection_positions.c.name, projection_positions.c.position)
        .where(projection_positions.c.name.in_(sa.bindparam("names", expanding=True)))
        .order_by(projection_positions.c.name)  # one lock order everywhere: no deadlocks
    )
    return query.with_for_update() if for_update else query


def _locked(connection: sa.Connection, names: list[str]) -> dict[str, int]:
    query = _lock_statement(connection.dialect.name == "postgresql")
    rows = connection.execute(query, {"names": names})
    return {name: int(position) for name, position in rows}


def read(connection: sa.Connection, names: Iterable[str] | None = None) -> dict[str, int]:
    """Positions without locking; projections never run yet are absent."""
    query = sa.select(projection_positions.c.name, projection_positions.c.position)
    if names is not None:
        query = query.where(projection_positions.c.name.in_(list(names)))
    return {name: int(position) for name, position in connection.execute(query)}


_STORE = (
    projection_positions.update()
    .where(projection_positions.c.name.in_(sa.bindparam("names", expanding=True)))
    .values(position=sa.bindparam("to"))
)


def store(connection: sa.Connection, name: str, position: int) -> None:
    """Move ``name`` to ``position`` (call with its row locked)."""
    store_all(connection, {name: position})


def store_all(connection: sa.Connection, moved: Mapping[str, int]) -> None:
    """Move each name to its position (rows locked), one statement per distinct position:
    the projections of a batch usually all end at its last event."""
    names_at: dict[int, list[str]] = {}
    for name, position in sorted(moved.items()):
        names_at.setdefault(position, []).append(name)
    for position, names in names_at.items():
        connection.execute(_STORE, {"names": names, "to": position})


def forget(connection: sa.Connection, name: str) -> None:
    connection.execute(projection_positions.delete().where(projection_positions.c.name == name))
