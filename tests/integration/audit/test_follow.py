"""`tasktrail replay TASK_ID --follow` in its own process, following a run a worker executes."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.processes import tasktrail_env
from test_replay_and_verify import run_cli

from tasktrail import bootstrap
from tasktrail.engine.service import CancelOutcome, ExecutionService
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

LINE_SECONDS = 30.0


class Following:
    """A ``tasktrail replay --follow`` subprocess whose stdout is read line by line."""

    def __init__(self, settings: Settings, task_id: uuid.UUID, *flags: str) -> None:
        argv = [sys.executable, "-m", "tasktrail", "replay", str(task_id), "--follow", *flags]
        self.popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **tasktrail_env(settings.database_url, poll_seconds=0.05)},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=LINE_SECONDS)
        assert line is not None, f"follower ended early: {self.stderr()}"
        return line

    def next_json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.next_line())
        return parsed

    def rest(self) -> list[str]:
        """Every line until the process closes its stdout."""
        lines = []
        while (line := self.lines.get(timeout=LINE_SECONDS)) is not None:
            lines.append(line)
        return lines

    def wait(self) -> int:
        return self.popen.wait(timeout=LINE_SECONDS)

    def stderr(self) -> str:
        assert self.popen.stderr is not None
        if self.popen.poll() is None:
            return "(still running)"
        return self.popen.stderr.read()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def service(settings: Settings) -> Iterator[ExecutionService]:
    container = bootstrap.build(settings, upgrade=False)
    yield container.service
    container.close()


@pytest.fixture
def follow(settings: Settings) -> Iterator[Callable[..., Following]]:
    started: list[Following] = []

    def start(task_id: uuid.UUID, *flags: str) -> Following:
        following = Following(settings, task_id, *flags)
        started.append(following)
        return following

    yield start
    for following in started:
        following.stop()


def replayed(settings: Settings, task_id: uuid.UUID) -> list[dict[str, Any]]:
    done = run_cli(settings, "replay", str(task_id), "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_follow_prints_each_event_of_a_live_run_as_it_happens_then_the_verdict(
    settings: Settings,
    service: ExecutionService,
    start_process: Callable[..., Any],
    follow: Callable[..., Following],
) -> None:
    # A run that cannot end by itself during the test: it stops when we cancel it.
    task = service.start_execution("tasktrail.sleep", {"seconds": 120, "steps": 240})
    following = follow(task.id, "--json")
    assert following.next_json()["type"] == "task.created"

    start_process(workers=1)
    seen = [following.next_json()]
    while seen[-1]["type"] != "task.progress_updated":
        seen.append(following.next_json())
    assert service.get_task(task.id).status is TaskStatus.RUNNING
    assert [s["type"] for s in seen[:1]] == ["task.started"]

    assert service.cancel_task(task.id) is CancelOutcome.REQUESTED
    rest = [json.loads(line) for line in following.rest()]
    assert following.wait() == 0, following.stderr()
    steps, verdict = rest[:-1], rest[-1]
    assert verdict == {"verdict": "intact", "findings": []}
    assert steps[-1]["type"] == "task.cancelled"
    assert steps[-1]["state"]["status"] == "CANCELLED"
    # Nothing skipped or printed twice: the followed lines are the run's whole history.
    followed = [{"type": "task.created"}, *seen, *steps]
    stored = replayed(settings, task.id)[:-1]
    assert [s["type"] for s in followed] == [s["type"] for s in stored]
    assert [*seen, *steps] == stored[1:]


def test_follow_in_text_ends_with_the_verdict_after_the_run_completes(
    service: ExecutionService,
    start_process: Callable[..., Any],
    follow: Callable[..., Following],
) -> None:
    task = service.start_execution("tasktrail.sleep", {"seconds": 0.3, "steps": 3})
    following = follow(task.id)
    start_process(workers=1)
    lines = following.rest()
    assert following.wait() == 0, following.stderr()
    assert "task.completed" in lines[-2]
    assert lines[-1] == f"verdict: chain intact over {len(lines) - 1} events"


def test_ctrl_c_ends_follow_with_status_130_and_no_traceback(
    service: ExecutionService, follow: Callable[..., Following]
) -> None:
    task = service.start_execution("tasktrail.sleep", {"seconds": 0})  # no worker runs it
    following = follow(task.id)
    assert "task.created" in following.next_line()
    following.popen.send_signal(signal.SIGINT)
    assert following.wait() == 130
    error = following.stderr()
    assert "Traceback" not in error
    assert "interrupted; 1 event(s) printed" in error
