"""`tasktrail worker` as a real process: it runs tasks, stops on SIGTERM, two of them run each
of many tasks exactly once, and a worker killed with SIGKILL loses its task to the reaper of
another worker within the lease."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import Process, start_worker, wait_until
from support.tasks import wait_for

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.leases import live_workers
from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import EVENTS_TABLE, TaskStore
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

WORKER_SETTINGS = {"lease_seconds": 2, "poll_seconds": 0.05}
TERMINAL = ("task.completed", "task.failed", "task.cancelled")
MANY_TASKS = 1000


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Separate worker processes are the PostgreSQL deployment: run these there."""
    return postgres_url


@pytest.fixture
def service(store: TaskStore) -> ExecutionService:
    return ExecutionService(store, lambda: [SLEEP_KIND])


@pytest.fixture
def workers() -> Iterator[list[Process]]:
    """Worker processes a test starts with ``spawn``; stopped at its end."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop(timeout=30)


def spawn(workers: list[Process], settings: Settings, name: str, log_dir: Path) -> Process:
    process = start_worker(
        name, settings.database_url, log_dir, concurrency=4, settings=WORKER_SETTINGS
    )
    workers.append(process)
    return process


def test_a_worker_process_runs_a_task_and_stops_on_sigterm(
    settings: Settings, service: ExecutionService, workers: list[Process], tmp_path: Path
) -> None:
    task = service.start_execution(SLEEP_KIND, {"seconds": 0.2, "steps": 2})
    worker = spawn(workers, settings, "worker", tmp_path)
    status = wait_for(service, task.id, {TaskStatus.COMPLETED, TaskStatus.FAILED})
    assert status is TaskStatus.COMPLETED, worker.log_tail()
    worker.stop(timeout=30)
    assert worker.popen.returncode == 0, worker.log_tail()


def test_two_worker_processes_run_each_of_many_tasks_exactly_once(
    settings: Settings,
    service: ExecutionService,
    sql: sa.Engine,
    store: TaskStore,
    workers: list[Process],
    tmp_path: Path,
) -> None:
    for name in ("first", "second"):
        spawn(workers, settings, name, tmp_path)
    wait_until(lambda: len(live_workers(sql)) == 2, 60, "two worker leases")
    ids = {str(service.start_execution(SLEEP_KIND, {"seconds": 0}).id) for _ in range(MANY_TASKS)}
    wait_until(lambda: ended_count(sql) >= MANY_TASKS, 60, f"{MANY_TASKS} tasks to end")

    events = whole_log(store)
    started = Counter(str(e.originator_id) for e in events if e.topic == "task.started")
    ended = Counter(str(e.originator_id) for e in events if e.topic in TERMINAL)
    assert set(started) == ids
    assert set(ended) == ids
    assert set(started.values()) == {1}
    assert set(ended.values()) == {1}
    assert sum(e.topic == "task.completed" for e in events) == MANY_TASKS
    ran_on = {e.data["worker_id"] for e in events if e.topic == "task.started"}
    assert len(ran_on) == 2, ran_on  # both processes took part


def test_a_task_of_a_worker_killed_with_sigkill_fails_worker_lost(
    settings: Settings, service: ExecutionService, workers: list[Process], tmp_path: Path
) -> None:
    task = service.start_execution(SLEEP_KIND, {"seconds": 60, "steps": 60})
    doomed = spawn(workers, settings, "doomed", tmp_path)
    assert wait_for(service, task.id, {TaskStatus.RUNNING}) is TaskStatus.RUNNING
    doomed.kill9()
    survivor = spawn(workers, settings, "survivor", tmp_path)
    others = [service.start_execution(SLEEP_KIND, {"seconds": 0.1}) for _ in range(5)]
    status = wait_for(service, task.id, {TaskStatus.FAILED, TaskStatus.COMPLETED})
    ended = service.get_task(task.id)
    assert status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error["reason"] == "worker_lost"
    for other in others:  # the survivor runs them, before and after the reaping
        assert wait_for(service, other.id, {TaskStatus.COMPLETED}) is TaskStatus.COMPLETED
        assert service.get_task(other.id).worker_id != ended.worker_id
    assert survivor.alive()


# -- reading the log directly: a few queries instead of a thousand aggregate loads -----------


def count_by_task(sql: sa.Engine, topics: tuple[str, ...]) -> Counter[str]:
    statement = sa.text(
        f"SELECT originator_id FROM {EVENTS_TABLE} WHERE topic IN :topics"
    ).bindparams(sa.bindparam("topics", expanding=True))
    with sql.connect() as connection:
        rows = connection.execute(statement, {"topics": list(topics)}).scalars()
        return Counter(str(row) for row in rows)


def ended_count(sql: sa.Engine) -> int:
    return sum(count_by_task(sql, TERMINAL).values())


def whole_log(store: TaskStore) -> list[LogEvent]:
    events: list[LogEvent] = []
    while batch := read_log(store, after=events[-1].position if events else 0, limit=1000):
        events.extend(batch)
    return events
