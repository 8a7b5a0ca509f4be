"""The plan's properties 1, 2, 3, 5 and 6 for ExecutionTask, over all inputs Hypothesis finds."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from tasktrail.engine import digest
from tasktrail.engine.task import (
    ExecutionTask,
    InvalidTaskStateError,
    Progress,
    TaskStatus,
)

Command = Callable[[ExecutionTask], None]

COMMANDS: dict[str, Command] = {
    "start": lambda t: t.start("w1"),
    "progress": lambda t: t.update_progress(1, 2, "fetching", "m"),
    "request_cancel": lambda t: t.request_cancel("u"),
    "complete": lambda t: t.complete({"matched": 0}),
    "fail": lambda t: t.fail("RuntimeError", "boom"),
    "cancel": lambda t: t.cancel("u"),
}

# What each command requires, and the status it leads to (None: status unchanged).
LEGAL: dict[str, tuple[set[TaskStatus], TaskStatus | None]] = {
    "start": ({TaskStatus.PENDING}, TaskStatus.RUNNING),
    "progress": ({TaskStatus.RUNNING}, None),
    "request_cancel": ({TaskStatus.PENDING, TaskStatus.RUNNING}, None),
    "complete": ({TaskStatus.RUNNING}, TaskStatus.COMPLETED),
    "fail": ({TaskStatus.RUNNING}, TaskStatus.FAILED),
    "cancel": ({TaskStatus.PENDING, TaskStatus.RUNNING}, TaskStatus.CANCELLED),
}


def new_task(parameters: dict[str, int] | None = None) -> ExecutionTask:
    return ExecutionTask.submit(uuid.uuid4(), "test.kind", parameters or {})


@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=4))
def test_property_1_a_new_task_is_pending(parameters: dict[str, int]) -> None:
    task = new_task(parameters)
    assert task.status is TaskStatus.PENDING
    assert task.parameters == parameters
    assert task.progress.percent == 0


def expected_status(task: ExecutionTask, name: str) -> TaskStatus:
    allowed, after = LEGAL[name]
    assert task.status in allowed
    if name == "request_cancel" and task.status is TaskStatus.PENDING:
        return TaskStatus.CANCELLED
    return after or task.status


@given(st.lists(st.sampled_from(sorted(COMMANDS)), max_size=12))
def test_properties_2_and_3_legal_transitions_succeed_and_illegal_ones_change_nothing(
    names: list[str],
) -> None:
    task = new_task()
    for name in names:
        allowed, _ = LEGAL[name]
        legal = task.status in allowed and not (name == "start" and task.cancel_requested)
        before_version, before_status = task.version, task.status
        if legal:
            status = expected_status(task, name)
            COMMANDS[name](task)
            assert task.status is status
            assert task.version >= before_version
        else:
            try:
                COMMANDS[name](task)
            except InvalidTaskStateError:
                pass
            else:
                raise AssertionError(f"{name} on {before_status} did not raise")
            assert (task.version, task.status) == (before_version, before_status)
    assert digest.verify(task.collect_events()) == []


@given(
    st.integers(min_value=-(10**6), max_value=10**9), st.integers(min_value=-10, max_value=10**9)
)
def test_property_5_percent_is_floor_of_the_ratio_clamped(current: int, total: int) -> None:
    percent = Progress(current, total).percent
    if total <= 0:
        assert percent == 0
    else:
        assert percent == max(0, min(100, (100 * current) // total))
        assert 0 <= percent <= 100


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.text(max_size=20),
    st.text(max_size=40),
)
def test_property_6_every_progress_update_has_the_complete_structure(
    current: int, total: int, phase: str, message: str
) -> None:
    task = new_task()
    task.start("w1")
    task.update_progress(current, total, phase, message)
    progress = task.progress.as_dict()
    assert set(progress) == {"current", "total", "percent", "phase", "message"}
    assert (progress["current"], progress["total"]) == (current, total)
    assert (progress["phase"], progress["message"]) == (phase, message)
    assert progress["percent"] == Progress(current, total).percent
