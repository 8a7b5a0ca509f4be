"""The outbox follower: reads the event log in position order and feeds its consumers.

One Follower per process. Each consumer tracks its own position (a projection keeps it in the
same SQL transaction as its rows; the SSE hub keeps it in memory); the follower reads the log
after the lowest of them and hands every consumer only the events above its own position.

Wake-ups are hints, never the source of truth: after each one the follower re-reads the log
after the last position. They come from this process's saves (immediate), from PostgreSQL's
LISTEN/NOTIFY on the events table's channel (eventsourcing's recorder NOTIFYs on every insert),
and from a fallback poll for whatever was missed (other processes on SQLite, a notification
lost while reconnecting).

Ordering: positions commit in increasing order on both backends. eventsourcing's PostgreSQL
recorder takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` before inserting (as long as
POSTGRES_ENABLE_DB_FUNCTIONS stays off), and SQLite has a single writer, so a reader that has
seen position N will never later see a smaller one commit.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy.engine import make_url

from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.store import EVENTS_TABLE, TaskStore
from tasktrail.settings import Settings

log = logging.getLogger(__name__)

POSTGRES_POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0
LISTEN_TIMEOUT_SECONDS = 0.5


class Consumer(Protocol):
    """Something that wants every event of the log once, in order."""

    name: str

    def position(self) -> int:
        """The position of the last event this consumer has handled (read once, at start)."""
        ...  # pragma: no cover

    def handle(self, batch: Sequence[LogEvent]) -> int | None:
        """Handle events in position order; raising makes the follower redeliver them.

        Return None when the whole batch is handled, or the position the consumer really is
        at when that differs (a projection whose stored position moved under it: another
        process applied the events, or an in-place rebuild reset it); the follower then
        delivers from there.
        """
        ...  # pragma: no cover


@dataclass
class _Tracked:
    consumer: Consumer
    position: int | None = None
    failures: int = 0
    retry_at: float = 0.0


def backoff_seconds(failures: int) -> float:
    """Exponential back-off with full jitter, capped at a few seconds."""
    ceiling = min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** min(failures, 10))
    return random.uniform(ceiling / 2, ceiling)


class Follower:
    """Follows the log in a daemon thread and delivers batches to its consumers."""

    def __init__(self, store: TaskStore, settings: Settings, *, batch_size: int = 500) -> None:
        self.store = store
        self.settings = settings
        self.batch_size = batch_size
        self._tracked: list[_Tracked] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._failures = 0
        store.add_save_listener(self.wake)

    @property
    def poll_seconds(self) -> float:
        if self.settings.is_postgres:
            return POSTGRES_POLL_SECONDS
        return self.settings.poll_seconds

    def add_consumer(self, consumer: Consumer) -> None:
        """Deliver to ``consumer`` from its own position on (may be called while running)."""
        with self._lock:
            self._tracked.append(_Tracked(consumer))
        self.wake()

    def positions(self) -> dict[str, int | None]:
        """Each consumer's position as the follower knows it (None: not read yet)."""
        with self._lock:
            return {t.consumer.name: t.position for t in self._tracked}

    def wake(self) -> None:
        """Re-read the log now (something was saved or notified)."""
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Run in daemon threads until ``stop``."""
        if self._threads:
            return
        self._stopping.clear()
        self._threads.append(threading.Thread(target=self._run, name="outbox-follower"))
        if self.settings.is_postgres:
            self._threads.append(threading.Thread(target=self._listen, name="outbox-listen"))
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the batch in hand; waits up to ``timeout`` seconds for the threads."""
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def wait_until(self, position: int, timeout: float = 10.0) -> bool:
        """Wait until every consumer has handled ``position``; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while not self._all_reached(position):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.1))
        return True

    def wait_for_head(self, timeout: float = 10.0) -> bool:
        """Wait until every consumer has handled the newest event stored right now."""
        return self.wait_until(self.store.head(), timeout)

    def _all_reached(self, position: int) -> bool:
        with self._lock:
            return all(t.position is not None and t.position >= position for t in self._tracked)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                delivered = self.run_once()
                self._failures = 0
            except Exception:
                self._failures += 1
                pause = backoff_seconds(self._failures)
                log.exception("outbox follower failed; retrying in %.2fs", pause)
                self._stopping.wait(pause)
                continue
            if not delivered:
                self._tick()
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _tick(self) -> None:
        """Give consumers with an optional ``tick()`` a turn when the log is idle (a standby
        projector tries its lock then, so it takes over even when nothing is written)."""
        with self._lock:
            consumers = [t.consumer for t in self._tracked]
        for consumer in consumers:
            tick = getattr(consumer, "tick", None)
            if tick is None:
                continue
            try:
                tick()
            except Exception:
                log.exception("consumer %s failed in tick()", consumer.name)

    def _idle_wait(self) -> float:
        now = time.monotonic()
        with self._lock:
            retries = [t.retry_at - now for t in self._tracked if t.retry_at > now]
        return min([self.poll_seconds, *retries])

    def run_once(self) -> int:
        """Read one batch after the lowest position and deliver it; returns events delivered.

        Raises when the log cannot be read (the loop backs off and retries); a consumer that
        raises is logged and retried later from its own position.
        """
        due = self._due_consumers()
        if not due:
            return 0
        after = min(t.position for t in due if t.position is not None)
        batch = read_log(self.store, after=after, limit=self.batch_size)
        if not batch:
            return 0
        delivered = sum(self._deliver(t, batch) for t in due)
        with self._progress:
            self._progress.notify_all()
        return delivered

    def _due_consumers(self) -> list[_Tracked]:
        now = time.monotonic()
        with self._lock:
            tracked = list(self._tracked)
        due = []
        for t in tracked:
            if t.retry_at > now:
                continue
            if t.position is None:
                # Read lazily so a database that is down at start-up is retried like any error.
                t.position = t.consumer.position()
            due.append(t)
        return due

    def _deliver(self, tracked: _Tracked, batch: Sequence[LogEvent]) -> int:
        assert tracked.position is not None
        fresh = [e for e in batch if e.position > tracked.position]
        if not fresh:
            return 0
        try:
            reported = tracked.consumer.handle(fresh)
        except Exception:
            tracked.failures += 1
            pause = backoff_seconds(tracked.failures)
            tracked.retry_at = time.monotonic() + pause
            log.exception(
                "consumer %s failed on positions %d..%d; redelivering in %.2fs",
                tracked.consumer.name,
                fresh[0].position,
                fresh[-1].position,
                pause,
            )
            return 0
        tracked.failures = 0
        tracked.retry_at = 0.0
        before = tracked.position
        tracked.position = fresh[-1].position if reported is None else reported
        # A consumer that did not move waits for the next wake-up instead of spinning.
        return 0 if tracked.position == before else len(fresh)

    # -- PostgreSQL LISTEN ------------------------------------------------------------------

    def _listen(self) -> None:
        """Turn NOTIFYs on the events table's channel into wake-ups; reconnect on errors."""
        failures = 0
        while not self._stopping.is_set():
            try:
                with self._listen_connection() as connection:
                    connection.execute(f'LISTEN "{self._channel()}"')
                    failures = 0
                    # Something may have been written while we were not listening.
                    self.wake()
                    while not self._stopping.is_set():
                        for _ in connection.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                            self.wake()
            except Exception as error:
                failures += 1
                pause = backoff_seconds(failures)
                log.warning("LISTEN connection lost (%s); reconnecting in %.2fs", error, pause)
                self._stopping.wait(pause)

    def _channel(self) -> str:
        return str(getattr(self.store.recorder, "channel_name", EVENTS_TABLE))

    def _listen_connection(self) -> psycopg.Connection[Any]:
        url = make_url(self.settings.database_url)
        return psycopg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            dbname=url.database,
            autocommit=True,
            connect_timeout=5,
        )
