"""The group-commit writer on both backends: callers waiting together share one transaction,
each returns only after its events are stored, a conflicting task fails alone and leaves
nothing of itself behind, and in a running process submissions and workers share the one
writer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError
from support.locks import log_locked
from support.processes import wait_until

from tasktrail.engine.group_commit import GroupCommitWriter
from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.settings import Settings

CALLERS = 12


@pytest.fixture
def service(store: TaskStore) -> ExecutionService:
    return ExecutionService(store, lambda: [SLEEP_KIND])


@pytest.fixture
def writer(store: TaskStore) -> Iterator[GroupCommitWriter]:
    writer = GroupCommitWriter(store)
    writer.start()
    yield writer
    writer.stop()


def started(service: ExecutionService) -> ExecutionTask:
    """A new task, loaded and started, its Started event not yet recorded."""
    task = service.get_task(service.start_execution(SLEEP_KIND, {}).id)
    task.start("worker-test")
    return task


def queued_behind_lock(
    settings: Settings,
    writer: GroupCommitWriter,
    records: list[Callable[[], None]],
    hold_seconds: float = 0.0,
) -> list[Future[None]]:
    """Run ``records`` (each a writer.record call) while the log is locked: the first one's
    transaction waits on the lock and the rest queue up behind it (for ``hold_seconds`` more
    once they all have). Returns their outcomes once the lock is gone."""
    with ThreadPoolExecutor(len(records)) as pool, log_locked(settings):
        futures = [pool.submit(records[0])]
        writer_at(lambda: writer.in_flight == 1)
        futures += [pool.submit(record) for record in records[1:]]
        writer_at(lambda: writer.queued == len(records) - 1)
        time.sleep(hold_seconds)
    return futures


def writer_at(condition: Callable[[], bool]) -> None:
    wait_until(condition, 10, "the writer's queue", interval=0.005)


def test_callers_waiting_together_share_one_transaction(
    settings: Settings, service: ExecutionService, writer: GroupCommitWriter
) -> None:
    tasks = [started(service) for _ in range(CALLERS)]
    futures = queued_behind_lock(settings, writer, [partial(writer.save, task) for task in tasks])

    for future in futures:
        future.result()
    for task in tasks:
        assert service.get_task(task.id).status is TaskStatus.RUNNING
    assert writer.saved == CALLERS
    # The first caller's batch waited on the lock while the others queued: they went in one.
    assert writer.batches == 2


def test_a_wait_behind_the_transaction_in_flight_is_not_counted_as_handover(
    settings: Settings, service: ExecutionService, writer: GroupCommitWriter
) -> None:
    """The writer reports which part of a record's wait came after it was free (what handing
    over to its thread costs) apart from the transaction in flight (which a caller recording
    on its own would wait for too, on the same lock)."""
    held = 0.4
    tasks = [started(service) for _ in range(CALLERS)]
    records: list[Callable[[], None]] = [partial(writer.save, task) for task in tasks]
    for future in queued_behind_lock(settings, writer, records, hold_seconds=held):
        future.result()

    assert writer.batches == 2
    assert writer.max_wait_seconds >= held
    assert writer.wait_percentile(0.99) >= held
    assert writer.max_handover_seconds < held / 2
    assert "of it after the writer was free: p99" in writer.summary()


def test_a_caller_returns_only_after_its_events_are_stored(
    service: ExecutionService, writer: GroupCommitWriter
) -> None:
    def save_and_look(task: ExecutionTask) -> TaskStatus:
        writer.save(task)
        return service.get_task(task.id).status

    tasks = [started(service) for _ in range(CALLERS)]
    with ThreadPoolExecutor(CALLERS) as pool:
        statuses = list(pool.map(save_and_look, tasks))

    assert statuses == [TaskStatus.RUNNING] * CALLERS


def test_a_conflicting_task_fails_alone_and_leaves_nothing_of_itself(
    settings: Settings, service: ExecutionService, writer: GroupCommitWriter
) -> None:
    tasks = [started(service) for _ in range(CALLERS)]
    stale = tasks[CALLERS // 2]
    # Someone cancels the stale task first (pending: Cancelled at once), so its Started
    # clashes on version 2.
    service.cancel_task(stale.id)

    futures = queued_behind_lock(settings, writer, [partial(writer.save, task) for task in tasks])

    outcomes: list[Any] = [future.exception() for future in futures]
    assert isinstance(outcomes[CALLERS // 2], IntegrityError)
    assert [o for i, o in enumerate(outcomes) if i != CALLERS // 2] == [None] * (CALLERS - 1)
    for task in tasks:
        expected = TaskStatus.CANCELLED if task is stale else TaskStatus.RUNNING
        assert service.get_task(task.id).status is expected
    assert service.get_task(stale.id).version == 2  # Created, Cancelled: no Started


def test_a_stopped_writer_records_what_was_queued_and_then_records_directly(
    settings: Settings, service: ExecutionService, store: TaskStore
) -> None:
    writer = GroupCommitWriter(store)
    writer.start()
    tasks = [started(service) for _ in range(4)]
    with ThreadPoolExecutor(5) as pool:
        with log_locked(settings):
            futures = [pool.submit(writer.save, tasks[0])]
            writer_at(lambda: writer.in_flight == 1)
            futures += [pool.submit(writer.save, task) for task in tasks[1:]]
            writer_at(lambda: writer.queued == 3)
            stopping = pool.submit(writer.stop)
        stopping.result()
    for future in futures:
        future.result()
    late = started(service)
    writer.save(late)  # no thread any more: recorded directly, still before returning

    for task in [*tasks, late]:
        assert service.get_task(task.id).status is TaskStatus.RUNNING


def test_a_running_process_records_submissions_and_worker_events_through_one_writer(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=4)
    writer: GroupCommitWriter = process.container.parts["writer"]
    assert process.container.parts["workers"].writer is writer
    service: ExecutionService = process.container.service

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: service.start_execution(SLEEP_KIND, {}).id, range(40)))
    for task_id in ids:
        assert process.wait_until_ended(task_id).status is TaskStatus.COMPLETED

    # Each task: its submission, its Started and its Completed, all through this writer.
    assert writer.saved == 3 * len(ids)
