"""`tasktrail serve --worker-processes K`: the workers run in K children of serve, which are
started again when one dies (its run failed at once, not at the end of its lease), stopped
with serve, and stop by themselves when serve is killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from support.processes import Process, children_of, running, start_serve, wait_until
from support.tasks import wait_for

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import TaskStatus

# A lease far longer than the test: only serve's own watch can fail a dead child's run in time.
SETTINGS = {"lease_seconds": 600, "poll_seconds": 0.05, "worker_processes": 2}
ENDED = {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}


@pytest.fixture
def service(store: TaskStore) -> ExecutionService:
    return ExecutionService(store, lambda: [SLEEP_KIND])


def workers_of(serve: Process) -> set[int]:
    """The pids of serve's `tasktrail worker` children."""
    return set(children_of(serve.pid))


def wait_for_workers(serve: Process, count: int = 2) -> None:
    """Until ``count`` children run and have said so (their signal handlers are set)."""

    def up() -> bool:
        serve.require_alive()
        said = serve.log_path.read_text().count("worker running")
        return said >= count and len(workers_of(serve)) == 2

    wait_until(up, 60, f"{count} worker processes")


def all_gone(pids: set[int]) -> bool:
    return not any(running(pid) for pid in pids)


def pid_of(worker_id: str | None) -> int:
    """A worker id is host:pid:random (engine/leases.new_worker_id)."""
    assert worker_id is not None
    return int(worker_id.split(":")[1])


def test_serve_runs_its_tasks_in_worker_processes_and_replaces_one_killed(
    database_url: str, service: ExecutionService, tmp_path: Path
) -> None:
    serve = start_serve("serve", database_url, tmp_path, workers=2, settings=SETTINGS)
    try:
        wait_for_workers(serve)
        first_children = workers_of(serve)
        quick = [service.start_execution(SLEEP_KIND, {"seconds": 0.05}) for _ in range(20)]
        for task in quick:
            assert wait_for(service, task.id, ENDED) is TaskStatus.COMPLETED, serve.log_tail()
        ran_on = {pid_of(service.get_task(task.id).worker_id) for task in quick}
        assert ran_on <= first_children, (ran_on, first_children)
        assert serve.pid not in ran_on

        doomed = service.start_execution(SLEEP_KIND, {"seconds": 600, "steps": 600})
        assert wait_for(service, doomed.id, {TaskStatus.RUNNING}) is TaskStatus.RUNNING
        victim = pid_of(service.get_task(doomed.id).worker_id)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        assert wait_for(service, doomed.id, ENDED) is TaskStatus.FAILED, serve.log_tail()
        failed_after = time.monotonic() - killed_at
        ended = service.get_task(doomed.id)
        assert ended.error is not None
        assert ended.error["reason"] == "worker_lost"
        assert f"exited (process {victim} ended)" in ended.error["message"]
        assert failed_after < 60, failed_after  # the lease is 600 s

        def replaced() -> bool:
            now = workers_of(serve)
            return len(now) == 2 and victim not in now

        wait_until(replaced, 30, "the killed worker process to be replaced")
        wait_for_workers(serve, 3)
        assert "exited with -9" in serve.log_path.read_text()
        after = service.start_execution(SLEEP_KIND, {"seconds": 0.05})
        assert wait_for(service, after.id, ENDED) is TaskStatus.COMPLETED, serve.log_tail()
        assert pid_of(service.get_task(after.id).worker_id) != victim
        serve.require_alive()
    finally:
        serve.stop(timeout=30)


def test_serve_stops_its_worker_processes_with_itself(database_url: str, tmp_path: Path) -> None:
    serve = start_serve("serve", database_url, tmp_path, workers=1, settings=SETTINGS)
    try:
        wait_for_workers(serve)
        children = workers_of(serve)
        os.kill(serve.pid, signal.SIGTERM)  # serve alone, not its process group
        serve.popen.wait(timeout=15)
        # uvicorn raises the signal again once it has shut down cleanly
        assert serve.popen.returncode in (0, -signal.SIGTERM), serve.log_tail()
        assert "Application shutdown complete" in serve.log_path.read_text()
        assert all_gone(children), serve.log_tail()
        assert serve.log_path.read_text().count("worker stopped") == 2
    finally:
        serve.kill9()


def test_worker_processes_stop_by_themselves_when_serve_is_killed(
    database_url: str, tmp_path: Path
) -> None:
    serve = start_serve("serve", database_url, tmp_path, workers=1, settings=SETTINGS)
    try:
        wait_for_workers(serve)
        children = workers_of(serve)
        os.kill(serve.pid, signal.SIGKILL)  # serve alone: its children are orphaned
        serve.popen.wait(timeout=15)
        wait_until(lambda: all_gone(children), 20, "the orphaned worker processes to stop")
        assert serve.log_path.read_text().count("is gone; stopping") == 2
    finally:
        serve.kill9()
