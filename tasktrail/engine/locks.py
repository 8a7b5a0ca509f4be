"""Leadership by PostgreSQL session advisory lock: one active holder per role, the rest stand by.

The projector and the reaper run in every process of a scaled-out deployment, but only one
of each should do the work. The holder keeps the lock on a connection of its own; when its
process dies the server ends that session and the lock goes with it, and the next process to
try takes it over (the callers try at every pass, so a takeover follows within one poll).

The lock is a matter of efficiency, not of correctness: two projectors applying at once are
still serialised by their position rows, and two reapers only race on optimistic concurrency.
A split brain (a holder whose connection broke without it noticing yet) can therefore waste
work but never doubles an event.

On SQLite there is one writing process (the embedded default), so the lock is always held.

The lock connection names itself in ``application_name`` (``tasktrail <role> host:pid``), so
operators, ``tasktrail projections status`` and the reliability tests can see who leads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass

import sqlalchemy as sa

log = logging.getLogger(__name__)

# Keys are fixed per role; each is an ASCII tag so they read in pg_locks.objid.
PROJECTOR_LOCK_KEY = 0x7072_6F6A  # "proj"
REAPER_LOCK_KEY = 0x7265_6170  # "reap"
# How often ``held()`` really asks the server: a standby tries the lock, and a holder checks
# its connection, at most once per this many seconds (callers ask at every batch).
CHECK_SECONDS = 1.0


def holder_name(role: str) -> str:
    """What the lock's connection calls itself: role, host and process id."""
    return f"tasktrail {role} {socket.gethostname()}:{os.getpid()}"[:63]


@dataclass(frozen=True)
class Holder:
    """The session holding a lock, as PostgreSQL reports it."""

    backend_pid: int
    application_name: str

    @property
    def process_id(self) -> int | None:
        """The holding process's pid, read from its application_name (None if unknown)."""
        _, _, tail = self.application_name.rpartition(":")
        return int(tail) if tail.isdigit() else None


class AdvisoryLock:
    """A session advisory lock taken with ``pg_try_advisory_lock`` on a dedicated connection."""

    def __init__(
        self, sql: sa.Engine, key: int, role: str, *, check_seconds: float = CHECK_SECONDS
    ) -> None:
        self.sql = sql
        self.key = key
        self.role = role
        self.check_seconds = check_seconds
        self._connection: sa.Connection | None = None
        self._checked_at = -float("inf")
        self.always_held = sql.dialect.name != "postgresql"

    def held(self) -> bool:
        """True when this process holds the lock; tries to take it when it does not.

        The answer is the last one for ``check_seconds`` after each real check, so a caller
        may ask at every batch. Never raises for a lost connection: the lock is then not held
        (and is tried again at the next check).
        """
        if self.always_held:
            return True
        now = time.monotonic()
        if now - self._checked_at < self.check_seconds:
            return self._connection is not None
        self._checked_at = now
        if self._connection is not None:
            try:
                self._connection.execute(sa.text("SELECT 1"))
                return True
            except sa.exc.SQLAlchemyError:
                log.warning("lost the %s lock's connection; standing by", self.role)
                self._drop()
        return self._try()

    def _try(self) -> bool:
        try:
            # Autocommit: the session holds the lock, never an open transaction (one left
            # idle in transaction for hours would hold back VACUUM on the whole database).
            connection = self.sql.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.SQLAlchemyError as error:
            log.warning("cannot try the %s lock: %s", self.role, error)
            return False
        try:
            taken = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
            if taken:
                connection.execute(
                    sa.text("SELECT set_config('application_name', :name, false)"),
                    {"name": holder_name(self.role)},
                )
        except sa.exc.SQLAlchemyError as error:
            log.warning("cannot try the %s lock: %s", self.role, error)
            _discard(connection)
            return False
        if not taken:
            connection.close()  # back to the pool: a failed try holds nothing
            return False
        log.info("took the %s lock: this process is the active %s", self.role, self.role)
        self._connection = connection
        return True

    def release(self) -> None:
        """Give the lock up (a clean stop): unlocked first, so another session can take it as
        soon as this returns (a closed connection's backend exits, and lets go, only a moment
        later), then closed rather than returned to the pool, so no pooled session keeps it."""
        if self._connection is not None:
            try:
                self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
            except sa.exc.SQLAlchemyError as error:
                log.warning("cannot unlock the %s lock (closing its session): %s", self.role, error)
        self._drop()
        self._checked_at = -float("inf")

    def _drop(self) -> None:
        if self._connection is not None:
            _discard(self._connection)
            self._connection = None


def _discard(connection: sa.Connection) -> None:
    """Close a connection for good: its session (and any lock on it) ends."""
    try:
        connection.invalidate()
        connection.close()
    except sa.exc.SQLAlchemyError:
        pass


def holder(sql: sa.Engine, key: int) -> Holder | None:
    """Who holds the advisory lock ``key`` now (PostgreSQL), or None."""
    if sql.dialect.name != "postgresql":
        return None
    statement = sa.text(
        "SELECT a.pid, coalesce(a.application_name, '') FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = (CAST(:key AS bigint) >> 32) "
        "AND l.objid::bigint = (CAST(:key AS bigint) & 4294967295) "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with sql.connect() as connection:
        row = connection.execute(statement, {"key": key}).first()
    return Holder(int(row[0]), str(row[1])) if row else None
