"""How many tasks the task view holds in each status, kept beside it instead of counted.

A ``GROUP BY status`` over ``task_view`` scans every row, on every ``GET /api/tasks``. The
task view projection keeps ``task_status_counts`` instead, in the same transaction as the
rows it changes (so the counts are exactly-once with the view), and retention lowers them
with the rows it removes: at every position they equal that GROUP BY.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from tasktrail.projections.base import metadata, one_of, upsert_for

NAME = "task_status_counts"

task_status_counts = sa.Table(
    NAME,
    metadata,
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)


def statuses_of(
    connection: sa.Connection, view: sa.Table, task_ids: Iterable[str]
) -> dict[str, str]:
    """The status each of ``task_ids`` has in ``view`` now (absent ids are left out)."""
    wanted = sorted(set(task_ids))
    if not wanted:
        return {}
    query = _statuses_query(view, connection.dialect.name == "postgresql")
    return {str(i): str(status) for i, status in connection.execute(query, {"ids": wanted})}


@lru_cache(maxsize=128)
def _statuses_query(view: sa.Table, postgres: bool) -> sa.Select[Any]:
    # Built once per table: building a statement per call costs more CPU than running it.
    return sa.select(view.c.id, view.c.status).where(one_of(view.c.id, "ids", postgres))


def add(connection: sa.Connection, table: sa.Table, deltas: Mapping[str, int]) -> None:
    """Add each status's delta to its count, in one statement (rows made where missing)."""
    # One row order for every writer (projector, retention): their row locks cannot deadlock.
    rows = [{"status": s, "n": n} for s, n in sorted(deltas.items()) if n != 0]
    if not rows:
        return
    # One cached statement run for each row (a multi-row VALUES is compiled anew each time).
    connection.execute(_upsert(table, connection.dialect.name == "postgresql"), rows)


@lru_cache(maxsize=128)
def _upsert(table: sa.Table, postgres: bool) -> Any:
    statement = upsert_for(table, postgres=postgres)
    return statement.on_conflict_do_update(
        index_elements=[table.c.status], set_={"n": table.c.n + statement.excluded.n}
    )


def moves(before: Mapping[str, str], after: Mapping[str, str]) -> Counter[str]:
    """Count deltas for tasks going from ``before`` to ``after`` (id -> status; a task in
    only one of them arrives or leaves)."""
    deltas: Counter[str] = Counter()
    for task_id, status in before.items():
        if after.get(task_id) != status:
            deltas[status] -= 1
    for task_id, status in after.items():
        if before.get(task_id) != status:
            deltas[status] += 1
    return deltas


def read(connection: sa.Connection) -> dict[str, int]:
    """Every status with a count row, and its count."""
    query = sa.select(task_status_counts.c.status, task_status_counts.c.n)
    return {str(status): int(n) for status, n in connection.execute(query)}
