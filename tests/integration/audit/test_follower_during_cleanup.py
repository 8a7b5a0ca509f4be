"""An outbox follower running while ``tasktrail cleanup`` removes old tasks and new events
keep arriving misses no later event and repeats none (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from test_retention import cli

from tasktrail import bootstrap
from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.outbox import Follower
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings

OLD_TASKS = 400


class Recording:
    """A consumer that keeps every position handed to it, slowly, from the start of the log."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def position(self) -> int:
        return 0

    def handle(self, batch: Sequence[LogEvent]) -> None:
        self.seen.extend(e.position for e in batch)
        time.sleep(0.002)  # slow enough that its reads of old events overlap the deletes


def write_ended_tasks(store: TaskStore, count: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for start in range(0, count, 50):
        tasks = [ExecutionTask.submit(uuid.uuid4(), "tasktrail.sleep", {}) for _ in range(50)]
        for task in tasks:
            task.start("old-worker")
            task.complete({"matched": 0, "scanned": 0})
        store.save(*tasks)
        ids.extend(t.id for t in tasks[: count - start])
    return ids


def keep_appending(store: TaskStore, stop: threading.Event) -> None:
    """New tasks that start and report progress (never ended, so never eligible)."""
    while not stop.is_set():
        task = ExecutionTask.submit(uuid.uuid4(), "tasktrail.sleep", {})
        store.save(task)
        task.start("new-worker")
        store.save(task)
        for step in (1, 2):
            task.update_progress(step, 2, "sleeping")
            store.save(task)


def test_a_follower_during_cleanup_sees_every_later_event_once_in_order(
    settings: Settings, store: TaskStore, sql: sa.Engine
) -> None:
    old = write_ended_tasks(store, OLD_TASKS)
    projector = Projector(sql, bootstrap.read_side_projections(), standby=False)
    projector.catch_up(store)
    recording = Recording()
    follower = Follower(store, settings, batch_size=20)
    follower.add_consumer(projector)
    follower.add_consumer(recording)
    started_at = store.head()
    stop = threading.Event()
    appender = threading.Thread(target=keep_appending, args=(store, stop))
    follower.start()
    appender.start()
    try:
        later = (datetime.now(UTC) + timedelta(days=settings.retention_days + 1)).isoformat()
        result = cli(settings, "cleanup", "--now", later)
    finally:
        stop.set()
        appender.join(timeout=30)
    assert result.returncode == 0, result.stderr
    assert f"removed {OLD_TASKS} tasks" in result.stdout
    try:
        assert follower.wait_for_head(timeout=60)
    finally:
        follower.stop()

    assert [t for t in old if store.positions_of(t)] == []
    appended = [e.position for e in read_log(store, after=started_at, limit=1_000_000)]
    assert len(appended) > 0
    seen = recording.seen
    assert all(a < b for a, b in itertools.pairwise(seen)), "a position repeated"
    later_seen = [p for p in seen if p > started_at]
    missed = sorted(set(appended) - set(later_seen))
    assert later_seen == appended, (
        f"missed {missed[:10]}, {len(later_seen)} seen of {len(appended)}"
    )
