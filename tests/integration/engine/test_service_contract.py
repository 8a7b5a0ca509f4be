"""ExecutionService against each real backend: the same contract on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from functools import partial
from typing import cast

import pytest

from tasktrail.engine.history import history_with_states
from tasktrail.engine.service import CancelOutcome, ExecutionService, TaskNotFoundError
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask, InvalidTaskStateError, TaskStatus
from tasktrail.errors import ConflictError, ValidationError
from tasktrail.settings import Settings

KINDS = ["test.kind", "other.kind"]


@pytest.fixture
def service(store: TaskStore) -> ExecutionService:
    return ExecutionService(store, lambda: KINDS)


def test_starting_an_execution_records_a_pending_task_that_a_new_store_can_read(
    service: ExecutionService, settings: Settings
) -> None:
    task = service.start_execution("test.kind", {"n": 1}, submitted_by="alice")
    other = TaskStore(settings)
    try:
        again = ExecutionService(other, lambda: KINDS).get_task(task.id)
    finally:
        other.close()
    assert again.status is TaskStatus.PENDING
    assert (again.kind, again.parameters, again.submitted_by) == ("test.kind", {"n": 1}, "alice")


def test_an_unknown_kind_is_rejected_naming_the_known_ones(service: ExecutionService) -> None:
    with pytest.raises(ValidationError, match=r"other\.kind, test\.kind"):
        service.start_execution("nope", {})


def test_a_repeated_idempotency_key_returns_the_first_task(service: ExecutionService) -> None:
    first = service.start_execution("test.kind", {"n": 1}, idempotency_key="k1")
    second = service.start_execution("test.kind", {"n": 1}, idempotency_key="k1")
    assert first.id == second.id
    assert second.version == 1


def test_an_idempotency_key_reused_with_other_parameters_is_a_conflict(
    service: ExecutionService,
) -> None:
    service.start_execution("test.kind", {"n": 1}, idempotency_key="k1")
    with pytest.raises(ConflictError):
        service.start_execution("test.kind", {"n": 2}, idempotency_key="k1")


def test_an_unknown_task_id_is_not_found(service: ExecutionService) -> None:
    with pytest.raises(TaskNotFoundError):
        service.get_task(uuid.uuid4())
    with pytest.raises(TaskNotFoundError):
        service.cancel_task(uuid.uuid4())


def test_cancelling_a_pending_task_cancels_it_at_once(service: ExecutionService) -> None:
    task = service.start_execution("test.kind", {})
    assert service.cancel_task(task.id) is CancelOutcome.CANCELLED
    assert service.cancel_task(task.id) is CancelOutcome.ALREADY_CANCELLED
    assert service.get_task(task.id).status is TaskStatus.CANCELLED


def test_cancelling_a_running_task_records_a_request_once(service: ExecutionService) -> None:
    task = service.start_execution("test.kind", {})
    service.decide(task.id, lambda t: t.start("w1"))
    assert service.cancel_task(task.id) is CancelOutcome.REQUESTED
    assert service.cancel_task(task.id) is CancelOutcome.ALREADY_REQUESTED
    running = service.get_task(task.id)
    assert running.status is TaskStatus.RUNNING
    assert running.cancel_requested
    assert running.version == 3


def test_cancelling_a_completed_task_is_an_invalid_transition_and_records_nothing(
    service: ExecutionService,
) -> None:
    task = service.start_execution("test.kind", {})
    service.decide(task.id, lambda t: t.start("w1"))
    service.decide(task.id, lambda t: t.complete({"matched": 1}))
    with pytest.raises(InvalidTaskStateError):
        service.cancel_task(task.id)
    assert service.get_task(task.id).version == 3


def test_state_at_every_version_matches_the_history(service: ExecutionService) -> None:
    task = service.start_execution("test.kind", {})
    service.decide(task.id, lambda t: t.start("w1"))
    for i in range(1, 4):
        service.decide(
            task.id, partial(ExecutionTask.update_progress, current=i, total=3, phase="fetching")
        )
    service.decide(task.id, lambda t: t.complete({"matched": 2, "scanned": 3}))
    steps = history_with_states(service, task.id)
    assert [s.version for s in steps] == list(range(1, 7))
    positions = [s.position for s in steps]
    assert positions == sorted(cast("list[int]", positions))  # every stored event has one
    for step in steps:
        at = service.state_at(task.id, step.version)
        assert at.version == step.version
        assert at.status.value == step.state["status"]
        assert at.progress.as_dict() == step.state["progress"]
    with pytest.raises(ValidationError):
        service.state_at(task.id, 7)


def test_a_rerun_is_a_new_task_with_the_same_parameters_linked_to_the_first(
    service: ExecutionService,
) -> None:
    first = service.start_execution("test.kind", {"n": 5})
    rerun = service.rerun(first.id)
    assert rerun.id != first.id
    assert (rerun.kind, rerun.parameters, rerun.rerun_of) == ("test.kind", {"n": 5}, str(first.id))


def test_decide_reloads_and_decides_again_when_another_writer_got_there_first(
    service: ExecutionService, settings: Settings
) -> None:
    task = service.start_execution("test.kind", {})
    service.decide(task.id, lambda t: t.start("w1"))
    rival_store = TaskStore(settings)
    rival = ExecutionService(rival_store, lambda: KINDS)
    calls: list[TaskStatus] = []

    def complete_after_a_rival_cancel(t: object) -> None:
        from tasktrail.engine.task import ExecutionTask

        assert isinstance(t, ExecutionTask)
        calls.append(t.status)
        if len(calls) == 1:
            rival.decide(task.id, lambda r: r.cancel("rival"))
        t.complete({})

    try:
        with pytest.raises(InvalidTaskStateError):
            service.decide(task.id, complete_after_a_rival_cancel)
    finally:
        rival_store.close()
    assert calls == [TaskStatus.RUNNING, TaskStatus.CANCELLED]
    final = service.get_task(task.id)
    assert final.status is TaskStatus.CANCELLED
    assert final.version == 3


def test_get_tasks_reads_several_tasks_at_once_as_get_task_does(
    service: ExecutionService,
) -> None:
    started = service.start_execution("test.kind", {"n": 1})
    service.decide(started.id, lambda t: t.start("w1"))
    service.decide(
        started.id, partial(ExecutionTask.update_progress, current=1, total=2, phase="fetching")
    )
    pending = service.start_execution("other.kind", {"n": 2})
    unknown = uuid.uuid4()

    found = service.get_tasks([started.id, unknown, pending.id])

    assert set(found) == {started.id, pending.id}
    for task_id, task in found.items():
        alone = service.get_task(task_id)
        assert (task.version, task.status, task.kind, task.parameters, task.progress) == (
            alone.version,
            alone.status,
            alone.kind,
            alone.parameters,
            alone.progress,
        )
    assert service.get_tasks([]) == {}
