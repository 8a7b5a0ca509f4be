"""`tasktrail worker` as a real process: it runs tasks, stops on SIGTERM, and a worker killed
with SIGKILL loses its task to the reaper of another worker within the lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

LEASE_SECONDS = "2"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Separate worker processes are the PostgreSQL deployment: run these there."""
    return postgres_url


def start_worker(database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TASKTRAIL_DATABASE_URL": database_url,
        "TASKTRAIL_LEASE_SECONDS": LEASE_SECONDS,
        "TASKTRAIL_POLL_SECONDS": "0.05",
        "TASKTRAIL_SEED_EXAMPLES": "false",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tasktrail", "worker", "--concurrency", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(service: ExecutionService, task_id: uuid.UUID, done: set[TaskStatus]) -> TaskStatus:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = service.get_task(task_id).status
        if status in done:
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still {service.get_task(task_id).status}")


def test_a_worker_process_runs_a_task_and_stops_on_sigterm(
    settings: Settings, tmp_path: Path
) -> None:
    store = TaskStore(settings)
    service = ExecutionService(store, lambda: [SLEEP_KIND])
    task = service.start_execution(SLEEP_KIND, {"seconds": 0.2, "steps": 2})
    worker = start_worker(settings.database_url, tmp_path / "worker.log")
    try:
        assert wait_for(service, task.id, {TaskStatus.COMPLETED, TaskStatus.FAILED}) is (
            TaskStatus.COMPLETED
        ), (tmp_path / "worker.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        store.close()
    assert code == 0, (tmp_path / "worker.log").read_text()


def test_a_task_of_a_worker_killed_with_sigkill_fails_worker_lost(
    settings: Settings, tmp_path: Path
) -> None:
    store = TaskStore(settings)
    service = ExecutionService(store, lambda: [SLEEP_KIND])
    task = service.start_execution(SLEEP_KIND, {"seconds": 60, "steps": 60})
    doomed = start_worker(settings.database_url, tmp_path / "doomed.log")
    survivor = None
    try:
        assert wait_for(service, task.id, {TaskStatus.RUNNING}) is TaskStatus.RUNNING
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        survivor = start_worker(settings.database_url, tmp_path / "survivor.log")
        status = wait_for(service, task.id, {TaskStatus.FAILED, TaskStatus.COMPLETED})
        ended = service.get_task(task.id)
        assert status is TaskStatus.FAILED
        assert ended.error is not None
        assert ended.error["reason"] == "worker_lost"
    finally:
        if survivor is not None:
            survivor.send_signal(signal.SIGTERM)
            survivor.wait(timeout=30)
        store.close()
