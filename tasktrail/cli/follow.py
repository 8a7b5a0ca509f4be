"""``tasktrail replay TASK_ID --follow``: a live run's steps as they are committed, to its end.

The follower polls the event store for the task's events after the last version it printed
(an indexed read by task id), so it works from any process on SQLite and PostgreSQL alike;
a task's events are read in version order after the last one printed, so none is skipped or
printed twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

from tasktrail.engine.history import Step, steps_of
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.task import TaskStatus


def follow_steps(
    service: ExecutionService,
    task_id: UUID,
    *,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Step]:
    """Every step of the run so far, then each new one, until the one that ends the run.

    Raises TaskNotFoundError for an unknown task, and whatever decoding raises for a row that
    cannot be read (the caller's verdict names it).
    """
    service.get_task(task_id)
    events: list[Any] = []
    while True:
        after = events[-1].originator_version if events else 0
        fresh = list(service.store.events.get(task_id, gt=after))
        if not fresh:
            sleep(poll_seconds)
            continue
        positions = dict(service.store.positions_of(task_id))
        events.extend(fresh)
        # Refolding the whole run keeps one fold (history.steps_of); runs have few events.
        steps = steps_of(events, positions)
        yield from steps[-len(fresh) :]
        if TaskStatus(steps[-1].state["status"]).is_terminal:
            return
