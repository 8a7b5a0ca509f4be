"""Cancellation and failures through real workers, on both backends."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.service import CancelOutcome
from tasktrail.engine.task import InvalidTaskStateError, TaskStatus

TERMINAL = {"task.completed", "task.failed", "task.cancelled"}
RACE_TRIALS = 300


def test_a_running_task_is_cancelled_at_its_next_progress_point_keeping_its_progress(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1)
    service = process.container.service
    task = service.start_execution(SLEEP_KIND, {"seconds": 20, "steps": 200})
    process.wait_for(task.id, lambda t: t.progress.current >= 2)
    assert service.cancel_task(task.id) is CancelOutcome.REQUESTED
    ended = process.wait_until_ended(task.id)
    assert ended.status is TaskStatus.CANCELLED
    assert 0 < ended.progress.current < 200
    assert process.topics(task.id)[-1] == "task.cancelled"


def test_a_pending_task_is_cancelled_at_once(start_process: Callable[..., Any]) -> None:
    process = start_process(workers=0)
    service = process.container.service
    task = service.start_execution(SLEEP_KIND, {"seconds": 0})
    assert service.cancel_task(task.id) is CancelOutcome.CANCELLED
    assert service.get_task(task.id).status is TaskStatus.CANCELLED


def test_cancel_racing_completion_records_exactly_one_terminal_event(
    start_process: Callable[..., Any],
) -> None:
    # Handlers of 0 to 20 ms, cancelled while pending, as they start, or while they run:
    # the cancel and the completion land in every order across the trials.
    process = start_process(workers=4, progress_interval_seconds=0.0)
    service = process.container.service
    durations = [0.0, 0.002, 0.01, 0.02]
    tasks = []
    for number in range(RACE_TRIALS):
        parameters = {"seconds": durations[number % 4], "steps": number % 3}
        task = service.start_execution(SLEEP_KIND, parameters)
        tasks.append(task)
        if number % 5:
            process.wait_for(task.id, lambda t: t.status is not TaskStatus.PENDING)
        # Every fifth is cancelled right after its submission, most often still PENDING.
        with contextlib.suppress(InvalidTaskStateError):  # it completed first
            service.cancel_task(task.id)
    outcomes = set()
    for task in tasks:
        outcomes.add(process.wait_until_ended(task.id).status)
        topics = process.topics(task.id)
        assert sum(topic in TERMINAL for topic in topics) == 1, topics
        assert topics.count("task.started") <= 1
    assert TaskStatus.CANCELLED in outcomes


def test_a_handler_error_fails_the_task_with_its_type_and_message(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1)
    service = process.container.service
    task = service.start_execution(SLEEP_KIND, {"seconds": 0, "fail": "boom"})
    ended = process.wait_until_ended(task.id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error == {
        "type": "RuntimeError",
        "message": "boom",
        "retryable": False,
        "reason": "error",
    }


def test_many_tasks_on_two_workers_each_start_exactly_once(
    start_process: Callable[..., Any],
) -> None:
    first = start_process(workers=4)
    start_process(workers=4)
    service = first.container.service
    tasks = [service.start_execution(SLEEP_KIND, {"seconds": 0}) for _ in range(100)]
    for task in tasks:
        assert first.wait_until_ended(task.id).status is TaskStatus.COMPLETED
        assert first.topics(task.id).count("task.started") == 1
