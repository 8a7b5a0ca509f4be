"""A kind's timeout: the task fails with reason timeout at the deadline, on both backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tasktrail.engine.handlers import TaskContext
from tasktrail.engine.task import TaskStatus

TERMINAL = {"task.completed", "task.failed", "task.cancelled"}
TIMEOUT_SECONDS = 0.5


def test_a_handler_blocked_past_its_timeout_fails_timeout_while_it_still_runs(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1)
    release = threading.Event()
    returned = threading.Event()

    def blocked(_params: dict[str, Any], _context: TaskContext) -> dict[str, Any]:
        release.wait(60)
        returned.set()
        return {"late": True}

    process.container.registry.register("test.blocked", blocked, timeout_seconds=TIMEOUT_SECONDS)
    task = process.container.service.start_execution("test.blocked", {})
    try:
        ended = process.wait_until_ended(task.id)
        assert not returned.is_set()  # failed at the deadline, not when the handler ended
    finally:
        release.set()
    assert ended.status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error["reason"] == "timeout"
    assert ended.error["type"] == "TaskTimedOut"
    assert "test.blocked ran past its timeout of 0.5 s" in ended.error["message"]
    assert returned.wait(10)
    # The late result is discarded: the next task on the one worker thread still runs.
    process.container.registry.register("test.quick", lambda _p, _c: {"ok": True})
    quick = process.container.service.start_execution("test.quick", {})
    assert process.wait_until_ended(quick.id).status is TaskStatus.COMPLETED
    topics = process.topics(task.id)
    assert sum(topic in TERMINAL for topic in topics) == 1, topics


def test_a_handler_reporting_progress_past_its_timeout_is_told_to_stop(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1, progress_interval_seconds=0.0)
    stopped = threading.Event()

    def endless(_params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        step = 0
        try:
            while True:
                step += 1
                context.progress(step, step + 1, "looping")
                threading.Event().wait(0.02)
        finally:
            stopped.set()

    process.container.registry.register("test.endless", endless, timeout_seconds=TIMEOUT_SECONDS)
    task = process.container.service.start_execution("test.endless", {})
    ended = process.wait_until_ended(task.id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error["reason"] == "timeout"
    assert stopped.wait(10)
    assert ended.progress.current > 0
    topics = process.topics(task.id)
    assert sum(topic in TERMINAL for topic in topics) == 1, topics


def test_a_handler_within_its_timeout_completes(start_process: Callable[..., Any]) -> None:
    process = start_process(workers=1)
    process.container.registry.register(
        "test.prompt", lambda _p, _c: {"ok": True}, timeout_seconds=30.0
    )
    task = process.container.service.start_execution("test.prompt", {})
    ended = process.wait_until_ended(task.id)
    assert ended.status is TaskStatus.COMPLETED
    assert ended.result == {"ok": True}
