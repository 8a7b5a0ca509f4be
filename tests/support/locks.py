"""Holding the event log's write lock from outside, so a writer's next transaction waits."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tasktrail.engine.store import EVENTS_TABLE
from tasktrail.settings import Settings


@contextmanager
def log_locked(settings: Settings) -> Iterator[None]:
    """Hold the event log's write lock from another connection, so the writer's next
    transaction waits and whatever is handed over meanwhile queues up behind it."""
    if settings.is_sqlite:
        lite = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        lite.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lite.execute("ROLLBACK")
            lite.close()
        return
    with psycopg.connect(settings.database_url) as connection:
        connection.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
        yield
        connection.rollback()
