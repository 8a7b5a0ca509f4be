"""Plan 8.3: the embedded server (`tasktrail serve` on SQLite) killed with SIGKILL mid-run fails
the run it left RUNNING as soon as it is started again, long before the lease would expire."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.processes import start_serve
from support.tasks import wait_for

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import TaskStatus

# A lease far longer than the test: only the start-up check can fail the orphan in time.
SERVE_SETTINGS = {"lease_seconds": 600, "poll_seconds": 0.05}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The embedded single process is the SQLite deployment."""
    return sqlite_url


def test_a_restarted_embedded_server_fails_the_run_its_killed_predecessor_left_running(
    database_url: str, store: TaskStore, tmp_path: Path
) -> None:
    service = ExecutionService(store, lambda: [SLEEP_KIND])
    first = start_serve("first", database_url, tmp_path, workers=2, settings=SERVE_SETTINGS)
    try:
        orphan = service.start_execution(SLEEP_KIND, {"seconds": 600, "steps": 600})
        assert wait_for(service, orphan.id, {TaskStatus.RUNNING}) is TaskStatus.RUNNING
    finally:
        first.kill9()
    assert service.get_task(orphan.id).status is TaskStatus.RUNNING

    second = start_serve("second", database_url, tmp_path, workers=2, settings=SERVE_SETTINGS)
    try:
        # Answering /healthz means start-up is over: the orphan is failed by now.
        ended = service.get_task(orphan.id)
        assert ended.status is TaskStatus.FAILED, second.log_tail()
        assert ended.error is not None
        assert ended.error["reason"] == "worker_lost"
        assert str(ended.worker_id) in ended.error["message"]
        fresh = service.start_execution(SLEEP_KIND, {"seconds": 0.1, "steps": 2})
        assert wait_for(service, fresh.id, {TaskStatus.COMPLETED, TaskStatus.FAILED}) is (
            TaskStatus.COMPLETED
        ), second.log_tail()
        assert service.get_task(fresh.id).worker_id != ended.worker_id
    finally:
        second.stop()
