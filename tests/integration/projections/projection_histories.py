"""Task histories for projection tests: write them through the engine, fold them, compare.

The reference for every projection test is the write side itself: ``task_state`` of each
aggregate loaded from the store (the fold of its events), next to the task view's row.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from tasktrail.engine.history import task_state
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask, InvalidTaskStateError
from tasktrail.projections.strategy_view import StrategyViewProjection
from tasktrail.projections.task_view import TaskViewProjection, task_response, task_view

KIND = "screening.run_strategy"
STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
COMMANDS = ("start", "progress", "request_cancel", "complete", "fail", "cancel")


def projections() -> list[Any]:
    return [TaskViewProjection(), StrategyViewProjection()]


def service_for(store: TaskStore) -> ExecutionService:
    return ExecutionService(store, lambda: [KIND, "test.kind"])


def parameters_for(n: int) -> dict[str, Any]:
    strategy_id = str(uuid.UUID(int=n % 3 + 1))
    return {"strategy_id": strategy_id, "strategy": {"name": f"strategy {n % 3}"}}


def run_command(task: ExecutionTask, command: str, n: int) -> None:
    """Apply one command if the task's state allows it (illegal ones record nothing)."""
    try:
        if command == "start":
            task.start(f"worker-{n % 2}")
        elif command == "progress":
            task.update_progress(n % 7, 6, "filtering", f"step {n}")
        elif command == "request_cancel":
            task.request_cancel("tester")
        elif command == "complete":
            task.complete({"columns": [], "rows": [], "matched": n % 5, "scanned": 10})
        elif command == "fail":
            task.fail("RuntimeError", f"boom {n}", retryable=n % 2 == 0, reason="error")
        elif command == "cancel":
            task.cancel("tester", "test")
    except InvalidTaskStateError:
        pass


def write_history(store: TaskStore, commands: Sequence[str], seed: int = 0) -> ExecutionTask:
    """One task, saved after each command, so each event is its own log entry."""
    service = service_for(store)
    task = service.start_execution(KIND, parameters_for(seed))
    for n, command in enumerate(commands):
        run_command(task, command, seed + n)
        store.save(task)
    return task


def write_random_tasks(store: TaskStore, count: int, seed: int) -> list[uuid.UUID]:
    """``count`` tasks with random histories, several tasks saved per call for speed."""
    rng = random.Random(seed)
    service = service_for(store)
    ids: list[uuid.UUID] = []
    for start in range(0, count, 10):
        tasks = [
            ExecutionTask.submit(uuid.uuid4(), KIND, parameters_for(start + i))
            for i in range(min(10, count - start))
        ]
        store.save(*tasks)
        for step in range(rng.randint(1, 6)):
            for task in tasks:
                run_command(task, rng.choice(COMMANDS), start + step)
            store.save(*tasks)
        ids.extend(t.id for t in tasks)
    del service
    return ids


def folded(store: TaskStore, ids: Sequence[uuid.UUID]) -> dict[str, dict[str, Any]]:
    """Each task's state from its events (the write side's fold)."""
    service = service_for(store)
    return {str(i): task_state(service.get_task(i)) for i in ids}


def viewed(sql: sa.Engine, ids: Sequence[uuid.UUID] | None = None) -> dict[str, dict[str, Any]]:
    """Each task's row in the task view, in the same shape, without ``position``."""
    query = sa.select(task_view)
    if ids is not None:
        query = query.where(task_view.c.id.in_([str(i) for i in ids]))
    with sql.connect() as connection:
        rows = connection.execute(query).mappings().all()
    shaped = [task_response(r) for r in rows]
    return {s["id"]: {k: v for k, v in s.items() if k != "position"} for s in shaped}


def grouped_counts(sql: sa.Engine) -> dict[str, int]:
    """Tasks in each status by a GROUP BY over the task view's rows (every status present)."""
    query = sa.select(task_view.c.status, sa.func.count()).group_by(task_view.c.status)
    with sql.connect() as connection:
        counted = {str(status): int(n) for status, n in connection.execute(query)}
    return {status: counted.get(status, 0) for status in STATUSES}


def all_task_ids(store: TaskStore) -> list[uuid.UUID]:
    notifications = store.recorder.select_notifications(start=1, limit=10_000_000)
    return sorted({n.originator_id for n in notifications if n.topic == "task.created"})  # type: ignore[misc]
