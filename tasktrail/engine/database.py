"""SQLAlchemy engines for tasktrail's own tables, on SQLite or PostgreSQL, from Settings.

The event store is eventsourcing's; everything else (projections, the work queue, workers,
leases) goes through the engine made here. Nothing connects at import time.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from tasktrail.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Where a connection keeps the in-process write lock it holds (see sqlite_write_lock).
_HOLDS_WRITE_LOCK = "tasktrail.sqlite_write_lock"
_write_locks: dict[str, WriteLock] = {}  # by the file's real path
_write_locks_by_name: dict[str, WriteLock] = {}  # by the path as callers name it
_write_locks_guard = threading.Lock()


def sqlalchemy_url(database_url: str) -> URL:
    """The settings' URL with the psycopg 3 driver named for PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() in ("postgresql", "postgres") and url.drivername != (
        "postgresql+psycopg"
    ):
        url = url.set(drivername="postgresql+psycopg")
    return url


def create_sql_engine(
    settings: Settings, *, pool_size: int = 5, relaxed: bool = False
) -> sa.Engine:
    """The engine for tasktrail's own tables.

    ``relaxed``: for what the log can rebuild or a lease makes expire (the projector's
    batches, work-queue claims and releases). On PostgreSQL its sessions commit without
    waiting for the WAL flush (``synchronous_commit = off``, set once per connection): a
    crash of the database may undo the last fraction of a second of such transactions,
    always whole ones and in commit order, never an event of the log (which commits
    synchronously through the event store), so a projector resumes from its stored
    position and a lost claim is claimed again. Nor does it ping a connection before each
    use (a round trip in front of every transaction): its callers retry on errors, and
    SQLAlchemy replaces the pool's connections after the first one found broken. On SQLite
    it is the same as the default.
    """
    url = sqlalchemy_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        )
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        event.listen(engine, "commit", _release_write_lock)
        event.listen(engine, "rollback", _release_write_lock)
        return engine
    if relaxed:
        return sa.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=600,
            connect_args={"options": "-c synchronous_commit=off"},
        )
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=600
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not pysqlite, decide where transactions begin (pysqlite's
    # deferred BEGIN upgrades to a write lock mid-transaction and deadlocks writers).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class ProcessLock:
    """An exclusive ``flock`` on a file beside the database, held by one process at a time:
    a writer of another process waiting for it is woken by the kernel the moment it is
    released, where SQLite's own busy handler sleeps and retries (see sqlite_write_lock).

    One open file per process; its own writers are already one at a time (WriteLock), so
    a release unlocks whatever this process held. The lock goes with its process.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._opening = threading.Lock()

    def acquire(self) -> None:
        if self._fd is None:
            with self._opening:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class WriteLock:
    """A lock whose ``first`` takers (the event log's writer) go before the others waiting,
    but never twice in a row while others wait: submissions and workers wait on the log's
    commits, a projector batch or a claim waits for at most one of them. (With a plain lock
    the log's writes queued behind claims and projector batches, and 32 worker threads ran a
    third fewer no-op tasks per second; with priority alone a writer that never paused, as
    a tight loop of saves does, starved a rebuild until the others' timeouts.)

    With ``across``, the holder also holds that ProcessLock, so the writers of other
    processes on the same file (serve's worker processes) queue on it too.
    """

    def __init__(self, across: ProcessLock | None = None) -> None:
        self.across = across
        self._changed = threading.Condition(threading.Lock())
        self._held = False
        self._holder_first = False
        self._others_turn = False  # a first taker just released while others waited
        self._first_waiting = 0
        self.waiting = 0  # threads waiting for it now

    def acquire(self, *, first: bool = False, timeout: float = -1) -> bool:
        """True once held (in this process and, with ``across``, among processes); False
        after ``timeout`` seconds without it in this process."""
        if not self._acquire_here(first, timeout):
            # A release was missed here (the holder never gave it back): nor may the file
            # lock stay held by this process for ever, keeping the other processes out.
            if self.across is not None:
                self.across.release()
            return False
        if self.across is not None:
            try:
                self.across.acquire()
            except BaseException:
                self._release_here()
                raise
        return True

    def _acquire_here(self, first: bool, timeout: float) -> bool:
        deadline = time.monotonic() + timeout if timeout >= 0 else None
        with self._changed:
            self._first_waiting += first
            self.waiting += 1
            taken = False
            try:
                while self._held or self._must_wait(first):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._changed.wait(left)
                self._held, self._holder_first, taken = True, first, True
                if not first:
                    self._others_turn = False
                return True
            finally:
                self._first_waiting -= first
                self.waiting -= 1
                if not taken:  # those waiting on this one's turn or priority look again
                    self._changed.notify_all()

    def _must_wait(self, first: bool) -> bool:
        others_waiting = self.waiting - self._first_waiting > 0
        if first:
            return self._others_turn and others_waiting
        return self._first_waiting > 0 and not self._others_turn

    def release(self) -> None:
        if self.across is not None:
            self.across.release()
        self._release_here()

    def _release_here(self) -> None:
        with self._changed:
            self._held = False
            self._others_turn = self._holder_first and self.waiting > self._first_waiting
            if self.waiting:
                self._changed.notify_all()

    @contextmanager
    def first(self) -> Iterator[None]:
        """Held for the block, taken before the other waiters (bounded like the others)."""
        held = self.acquire(first=True, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        try:
            yield
        finally:
            if held:
                self.release()


def sqlite_write_lock(path: str) -> WriteLock:
    """The lock this process's writers to the SQLite file ``path`` take before its own.

    SQLite makes a writer that finds the file's write lock taken sleep and retry, sleeping
    longer each time (1, 2, 5, 10, 15, 20, 25 ms ...): a write that waited on another for
    1 ms could wake 20, 50 or 100 ms later. Inside one process the writers (the event
    store's, the projector's, claims) wait on this lock instead and go the moment it is
    free. Between processes on one file (serve and its worker processes) the holder also
    holds an ``flock`` on ``PATH-lock`` (ProcessLock), on which the kernel wakes a waiter at
    once: with SQLite's sleeps alone, serve's log writer beside one worker process waited
    105-331 ms at p99 and up to 538 ms (docs/design.md R2).
    """
    lock = _write_locks_by_name.get(path)  # at every write: no realpath's syscalls then
    if lock is None:
        with _write_locks_guard:
            real = os.path.realpath(path) if path else ""
            lock = _write_locks.get(real)
            if lock is None:
                across = ProcessLock(f"{real}-lock") if _is_file(path) else None
                lock = _write_locks[real] = WriteLock(across)
            _write_locks_by_name[path] = lock
    return lock


def _is_file(path: str) -> bool:
    """A plain file path: not an in-memory database (``""``, ``:memory:``) nor a ``file:``
    URI (in memory or not), which are left to SQLite's own lock."""
    return bool(path) and ":memory:" not in path and not path.startswith("file:")


def _begin_immediate(connection: sa.Connection) -> None:
    lock = sqlite_write_lock(connection.engine.url.database or "")
    # Bounded: should a release ever be missed, writers fall back to SQLite's own waiting.
    held = lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if held:
            lock.release()
        raise
    if held:
        connection.info[_HOLDS_WRITE_LOCK] = lock


def _release_write_lock(connection: sa.Connection) -> None:
    # SQLAlchemy calls this just before the COMMIT or ROLLBACK it is about to send: a writer
    # let in now may find SQLite's lock still held for that statement's (short) duration.
    lock = connection.info.pop(_HOLDS_WRITE_LOCK, None)
    if lock is not None:
        lock.release()
