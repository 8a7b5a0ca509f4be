"""The work queue on both backends: the projection holds exactly the tasks that wait, applied
event by event or in batches, and claims never hand one waiting task to two live claims."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from projection_histories import KIND, write_random_tasks

from tasktrail.engine.log import read_log
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.projections.work_queue import SqlWorkQueue, WorkQueueProjection, work_queue


def queued(sql: sa.Engine, table: sa.Table) -> set[str]:
    with sql.connect() as connection:
        return set(connection.execute(sa.select(table.c.task_id)).scalars())


def project(sql: sa.Engine, table: sa.Table, store: TaskStore, *, batched: bool) -> None:
    projection = WorkQueueProjection()
    tables = {work_queue.name: table}
    events = read_log(store, after=0, limit=100_000)
    with sql.begin() as connection:
        if batched:
            for start in range(0, len(events), 7):  # batches that split some histories
                projection.apply_batch(connection, tables, events[start : start + 7])
        else:
            for event in events:
                projection.apply(connection, tables, event)


def waiting_tasks(store: TaskStore, ids: list[Any]) -> set[str]:
    """The tasks still PENDING, folded from their events by the write side."""
    tasks: list[object] = [store.repository.get(task_id) for task_id in ids]
    return {
        str(t.id) for t in tasks if isinstance(t, ExecutionTask) and t.status is TaskStatus.PENDING
    }


def test_batched_and_one_by_one_application_both_hold_exactly_the_waiting_tasks(
    store: TaskStore, sql: sa.Engine
) -> None:
    ids = write_random_tasks(store, 120, seed=8)
    batched_table = work_queue.to_metadata(sa.MetaData(), name="work_queue_batched")
    batched_table.indexes.clear()  # their names belong to the real table
    batched_table.create(sql)
    project(sql, work_queue, store, batched=False)
    project(sql, batched_table, store, batched=True)
    expected = waiting_tasks(store, ids)
    assert expected  # the histories leave some tasks waiting, and some not
    assert len(expected) < len(ids)
    assert queued(sql, work_queue) == expected
    assert queued(sql, batched_table) == expected


def test_live_claims_never_overlap_and_an_expired_claim_is_taken_again(
    store: TaskStore, sql: sa.Engine
) -> None:
    tasks = [ExecutionTask.submit(uuid.uuid4(), KIND, {}) for _ in range(10)]
    store.save(*tasks)
    project(sql, work_queue, store, batched=True)
    queue = SqlWorkQueue(sql, claim_seconds=60)
    first = queue.claim("one", [KIND], 4)
    second = queue.claim("two", [KIND, "other.kind"], 100)
    assert len(first) == 4
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == {t.id for t in tasks}
    assert queue.claim("three", [KIND], 10) == []
    assert queue.claim("three", ["other.kind"], 10) == []

    queue.release(first[0])
    assert queue.claim("three", [KIND], 10) == [first[0]]


def test_an_expired_claim_is_taken_again(store: TaskStore, sql: sa.Engine) -> None:
    tasks = [ExecutionTask.submit(uuid.uuid4(), KIND, {}) for _ in range(3)]
    store.save(*tasks)
    project(sql, work_queue, store, batched=True)
    expiring = SqlWorkQueue(sql, claim_seconds=-1)  # claims over as soon as they are made
    claimed = expiring.claim("gone", [KIND], 10)
    assert set(claimed) == {t.id for t in tasks}
    assert claimed == [t.id for t in tasks]  # oldest first
    assert SqlWorkQueue(sql).claim("next", [KIND], 10) == claimed
