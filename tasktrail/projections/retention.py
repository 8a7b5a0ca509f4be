"""Retention on the read side: which tasks may go, and removing their rows from every view."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from tasktrail.projections import status_counts
from tasktrail.projections.positions import projection_positions
from tasktrail.projections.queries import naive_for
from tasktrail.projections.status_counts import task_status_counts
from tasktrail.projections.task_view import task_view
from tasktrail.projections.work_queue import work_queue

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def expired_tasks(sql: sa.Engine, cutoff: datetime) -> list[str]:
    """Tasks that ended before ``cutoff`` and that every projection has fully applied.

    Never a PENDING or RUNNING task. A task whose last event is above the slowest
    projection's position waits for the next run, so no projector can write it back.
    """
    with sql.connect() as connection:
        slowest = connection.execute(sa.select(sa.func.min(projection_positions.c.position)))
        floor = slowest.scalar() or 0
        rows = connection.execute(
            sa.select(task_view.c.id)
            .where(task_view.c.status.in_(TERMINAL))
            .where(task_view.c.finished_at < naive_for(connection, cutoff))
            .where(task_view.c.position <= floor)
            .order_by(task_view.c.finished_at)
        )
        return [str(r.id) for r in rows]


def remove_rows(sql: sa.Engine, task_ids: Sequence[str]) -> None:
    """Delete the tasks' rows from every task projection, and lower the task view's counts
    by the rows it lost, in one transaction."""
    with sql.begin() as connection:
        connection.execute(sa.delete(work_queue).where(work_queue.c.task_id.in_(task_ids)))
        removed = connection.execute(
            sa.delete(task_view).where(task_view.c.id.in_(task_ids)).returning(task_view.c.status)
        ).scalars()
        lost = Counter(str(status) for status in removed)
        status_counts.add(connection, task_status_counts, {s: -n for s, n in lost.items()})
