"""The ExecutionTask aggregate: states, transitions, progress and the digest chain."""

from __future__ import annotations

import uuid

import pytest

from tasktrail.engine import digest
from tasktrail.engine.task import ExecutionTask, InvalidTaskStateError, Progress, TaskStatus


def new_task() -> ExecutionTask:
    return ExecutionTask.submit(uuid.uuid4(), "test.kind", {"n": 1}, submitted_by="alice")


def test_a_new_task_is_pending_with_no_progress() -> None:
    task = new_task()
    assert task.status is TaskStatus.PENDING
    assert task.progress == Progress()
    assert task.version == 1


def test_cancelling_a_pending_task_records_cancelled() -> None:
    task = new_task()
    task.request_cancel("bob")
    assert task.status is TaskStatus.CANCELLED
    assert [type(e).TOPIC for e in task.collect_events()] == ["task.created", "task.cancelled"]


def test_cancel_of_a_running_task_is_requested_then_recorded() -> None:
    task = new_task()
    task.start("w1")
    task.request_cancel("bob")
    assert task.status is TaskStatus.RUNNING
    assert task.cancel_requested
    task.cancel("w1", "cancel requested")
    assert task.status is TaskStatus.CANCELLED


@pytest.mark.parametrize("end", ["complete", "fail", "cancel"])
def test_terminal_states_absorb_every_command(end: str) -> None:
    task = new_task()
    task.start("w1")
    {
        "complete": lambda: task.complete({}),
        "fail": lambda: task.fail("E", "m"),
        "cancel": lambda: task.cancel(),
    }[end]()
    version = task.version
    for command in (
        lambda: task.start("w2"),
        lambda: task.update_progress(1, 2),
        lambda: task.complete({}),
        lambda: task.fail("E", "m"),
        lambda: task.cancel(),
        lambda: task.request_cancel(),
    ):
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
