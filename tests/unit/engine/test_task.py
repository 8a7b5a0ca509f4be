"""The ExecutionTask aggregate: states, transitions, progress and the digest chain."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import cast

import pytest

from tasktrail.engine import digest
from tasktrail.engine.task import ExecutionTask, InvalidTaskStateError, Progress, TaskStatus


def new_task() -> ExecutionTask:
    return ExecutionTask.submit(uuid.uuid4(), "test.kind", {"n": 1}, submitted_by="alice")


def status_of(task: ExecutionTask) -> TaskStatus:
    """The task's status now (read through a call: mypy would keep an earlier narrowing)."""
    return task.status


def test_a_new_task_is_pending_with_no_progress() -> None:
    task = new_task()
    assert task.status is TaskStatus.PENDING
    assert task.progress == Progress()
    assert task.version == 1


def test_cancelling_a_pending_task_records_cancelled() -> None:
    task = new_task()
    task.request_cancel("bob")
    assert task.status is TaskStatus.CANCELLED
    events = [cast(ExecutionTask.Event, e) for e in task.collect_events()]
    assert [type(e).TOPIC for e in events] == ["task.created", "task.cancelled"]


def test_cancel_of_a_running_task_is_requested_then_recorded() -> None:
    task = new_task()
    task.start("w1")
    task.request_cancel("bob")
    assert task.status is TaskStatus.RUNNING
    assert task.cancel_requested
    task.cancel("w1", "cancel requested")
    assert status_of(task) is TaskStatus.CANCELLED


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_terminal_states_absorb_every_command(end: str) -> None:
    task = new_task()
    task.start("w1")
    ends: dict[str, Callable[[], None]] = {
        "complete": lambda: task.complete({}),
        "fail": lambda: task.fail("E", "m"),
        "cancel": lambda: task.cancel(),
    }
    ends[end]()
    version = task.version
    commands: tuple[Callable[[], None], ...] = (
        lambda: task.start("w2"),
        lambda: task.update_progress(1, 2),
        lambda: task.complete({}),
        lambda: task.fail("E", "m"),
        lambda: task.cancel(),
        lambda: task.request_cancel(),
    )
    for command in commands:
        with pytest.raises(InvalidTaskStateError):
            command()
    assert task.version == version


def test_the_digest_chain_verifies_and_breaks_when_content_changes() -> None:
    task = new_task()
    task.start("w1")
    task.update_progress(5, 10, "fetching", "half")
    task.complete({"rows": 3})
    events = list(task.collect_events())
    assert digest.verify(events) == []
    tampered = events[2].__class__(**{**vars(events[2]), "current": 9})
    breaks = digest.verify([*events[:2], tampered, events[3]])
    assert [b.version for b in breaks] == [3]
