"""The outbox follower: order, per-consumer positions, redelivery, reconnects, clean stop."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator, Sequence

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tasktrail.engine.log import LogEvent
from tasktrail.engine.outbox import Follower
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.settings import Settings

KIND = "test.kind"


class Recorder:
    """A consumer that remembers every position it was handed."""

    def __init__(self, name: str, start: int = 0, fail_times: int = 0) -> None:
        self.name = name
        self.start = start
        self.fail_times = fail_times
        self.seen: list[int] = []
        self.attempts: list[list[int]] = []
        self.lock = threading.Lock()

    def position(self) -> int:
        return self.start

    def handle(self, batch: Sequence[LogEvent]) -> None:
        with self.lock:
            self.attempts.append([e.position for e in batch])
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError("consumer failure on purpose")
            self.seen.extend(e.position for e in batch)


@pytest.fixture
def store(settings: Settings) -> Iterator[TaskStore]:
    store = TaskStore(settings)
    yield store
    store.close()


def write_tasks(store: TaskStore, count: int) -> None:
    service = ExecutionService(store, lambda: [KIND])
    for n in range(count):
        task = service.start_execution(KIND, {"n": n})
        service.decide(task.id, lambda t: t.start("w1"))


def all_positions(store: TaskStore) -> list[int]:
    return [n.id for n in store.recorder.select_notifications(start=1, limit=100_000)]


def test_every_consumer_gets_every_event_above_its_position_once_in_order(
    store: TaskStore, settings: Settings
) -> None:
    write_tasks(store, 3)
    follower = Follower(store, settings, batch_size=4)
    first, late = Recorder("first"), Recorder("late", start=store.head())
    follower.add_consumer(first)
    follower.add_consumer(late)
    follower.start()
    try:
        before = store.head()
        write_tasks(store, 5)
        assert follower.wait_for_head(timeout=20)
    finally:
        follower.stop()
    positions = all_positions(store)
    assert first.seen == positions
    assert late.seen == [p for p in positions if p > before]


def test_a_consumer_that_raises_gets_the_same_events_again(
    store: TaskStore, settings: Settings
) -> None:
    write_tasks(store, 2)
    follower = Follower(store, settings)
    flaky, steady = Recorder("flaky", fail_times=2), Recorder("steady")
    follower.add_consumer(flaky)
    follower.add_consumer(steady)
    follower.start()
    try:
        assert follower.wait_for_head(timeout=20)
    finally:
        follower.stop()
    positions = all_positions(store)
    assert flaky.attempts[0] == flaky.attempts[1] == flaky.attempts[2] == positions
    assert flaky.seen == steady.seen == positions


def test_stop_ends_the_follower_threads(store: TaskStore, settings: Settings) -> None:
    follower = Follower(store, settings)
    follower.add_consumer(Recorder("idle"))
    follower.start()
    assert follower.running
    follower.stop(timeout=5)
    assert not follower.running


def test_the_follower_sees_writes_of_another_process_by_polling(
    store: TaskStore, settings: Settings
) -> None:
    follower = Follower(store, settings)
    consumer = Recorder("other-writer")
    follower.add_consumer(consumer)
    follower.start()
    try:
        other = TaskStore(settings)  # its saves do not wake this follower
        try:
            write_tasks(other, 2)
        finally:
            other.close()
        assert follower.wait_until(store.head(), timeout=20)
    finally:
        follower.stop()
    assert consumer.seen == all_positions(store)


def _terminate_other_backends(database_url: str) -> int:
    name = make_url(database_url).database
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
def test_the_follower_resumes_after_its_connections_are_killed(postgres_url: str) -> None:
    settings = Settings(database_url=postgres_url, seed_examples=False)
    from tasktrail import schema

    schema.upgrade(settings)
    store = TaskStore(settings)
    follower = Follower(store, settings)
    consumer = Recorder("survivor")
    follower.add_consumer(consumer)
    follower.start()
    try:
        write_tasks(store, 2)
        assert follower.wait_for_head(timeout=20)
        assert _terminate_other_backends(postgres_url) > 0
        writer = TaskStore(settings)
        try:
            write_tasks(writer, 2)
        finally:
            writer.close()
        assert follower.wait_until(store.head(), timeout=30)
    finally:
        follower.stop()
        store.close()
    assert consumer.seen == all_positions_of(settings)


def all_positions_of(settings: Settings) -> list[int]:
    store = TaskStore(settings)
    try:
        return all_positions(store)
    finally:
        store.close()


def _write_in_a_process(database_url: str, count: int) -> None:
    store = TaskStore(Settings(database_url=database_url, seed_examples=False))
    try:
        write_tasks(store, count)
    finally:
        store.close()


@pytest.mark.postgres
def test_with_eight_concurrent_writer_processes_positions_arrive_once_and_in_order(
    postgres_url: str,
) -> None:
    settings = Settings(database_url=postgres_url, seed_examples=False)
    from tasktrail import schema

    schema.upgrade(settings)
    store = TaskStore(settings)
    follower = Follower(store, settings, batch_size=7)
    consumer = Recorder("ordered")
    follower.add_consumer(consumer)
    follower.start()
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_write_in_a_process, args=(postgres_url, 15)) for _ in range(8)
    ]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
            assert writer.exitcode == 0
        assert follower.wait_until(store.head(), timeout=30)
    finally:
        for writer in writers:
            if writer.is_alive():
                writer.kill()
        follower.stop()
        store.close()
    positions = all_positions_of(settings)
    assert len(positions) == 8 * 15 * 2
    assert consumer.seen == positions
    assert consumer.seen == sorted(set(consumer.seen))
