"""Shared by the integration suites: a running process on a migrated database (follower,
projector, reaper and workers)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from tasktrail import bootstrap
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.settings import Settings

WAIT_SECONDS = 60.0


class Process:
    """One tasktrail process: container, runtime, and waits bounded by WAIT_SECONDS."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.container = bootstrap.build(settings, upgrade=False)
        self.runtime = bootstrap.build_runtime(self.container, workers=workers)

    def wait_for(self, task_id: UUID, ready: Callable[[ExecutionTask], bool]) -> ExecutionTask:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            task = self.container.service.get_task(task_id)
            if ready(task):
                return task
            assert time.monotonic() < deadline, f"task {task_id} stuck at {task.status}"
            time.sleep(0.02)

    def wait_until_ended(self, task_id: UUID) -> ExecutionTask:
        return self.wait_for(task_id, lambda t: t.status.is_terminal)

    def topics(self, task_id: UUID) -> list[str]:
        return [type(e).TOPIC for e in self.container.service.history(task_id)]


@pytest.fixture
def store(settings: Settings) -> Iterator[TaskStore]:
    """An event store on the test's migrated database."""
    store = TaskStore(settings)
    yield store
    store.close()


@pytest.fixture
def sql(settings: Settings) -> Iterator[sa.Engine]:
    """A SQLAlchemy engine on the test's migrated database."""
    engine = create_sql_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def start_process(settings: Settings) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(workers: int = 2, **changes: Any) -> Process:
        process = Process(settings.replace(**changes), workers)
        process.runtime.start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.runtime.stop()
        process.container.close()
