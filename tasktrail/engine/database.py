"""SQLAlchemy engines for tasktrail's own tables, on SQLite or PostgreSQL, from Settings.

The event store is eventsourcing's; everything else (projections, the work queue, workers,
leases) goes through the engine made here. Nothing connects at import time.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url

from tasktrail.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000


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


def _begin_immediate(connection: sa.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
