"""The event store: an eventsourcing Application over SQLite or PostgreSQL.

Its events table is the outbox. Every event gets its notification id (its *position* in the
log) in the transaction that records it. On SQLite the table gets an AUTOINCREMENT id, so a
position is never reused after retention deletes the newest events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import (
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    Recording,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from eventsourcing.utils import get_topic, retry
from psycopg import sql as pgsql
from sqlalchemy.engine import make_url

from tasktrail.engine.database import sqlite_write_lock
from tasktrail.errors import ConfigurationError
from tasktrail.settings import Settings

EVENTS_TABLE = "tasktrail_events"
APPLICATION_NAME = "tasktrail"


class SQLiteEventRecorder(SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder with positions that are never reused."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = EVENTS_TABLE):
        super().__init__(datastore, EVENTS_TABLE)
        self.insert_events_statement = (
            f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) "
            "VALUES (?,?,?,?)"
        )
        self.select_events_statement = (
            f"SELECT originator_id, originator_version, topic, state FROM {EVENTS_TABLE} "
            "WHERE originator_id=? "
        )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        # The process's other writers to this file wait on the same lock (engine/database.py).
        with sqlite_write_lock(self.datastore.pool.db_name).first():
            return super().insert_events(stored_events, **kwargs)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        clauses: list[str] = []
        params: list[Any] = []
        if start is not None:
            clauses.append("position >= ?" if inclusive_of_start else "position > ?")
            params.append(start)
        if stop is not None:
            clauses.append("position <= ?")
            params.append(stop)
        if topics:
            clauses.append(f"topic IN ({','.join('?' * len(topics))})")
            params.extend(topics)
        where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        statement = (
            "SELECT position, originator_id, originator_version, topic, state "
            f"FROM {EVENTS_TABLE} {where}ORDER BY position LIMIT ?"
        )
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [
                Notification(
                    id=row["position"],
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def construct_create_table_statements(self) -> list[str]:
        return [
            f"CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} ("
            "position INTEGER PRIMARY KEY AUTOINCREMENT, "
            "originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, "
            "topic TEXT NOT NULL, "
            "state BLOB NOT NULL, "
            "UNIQUE (originator_id, originator_version))"
        ]


class PostgresEventRecorder(PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder, recording a transaction in ONE round trip.

    eventsourcing's own sends BEGIN, the lock timeout, the table lock, NOTIFY and the INSERT,
    waits for their results, then sends COMMIT and waits again: the log's exclusive lock is
    held across a round trip to the client and back, so a writer whose process is busy (its
    thread waiting for the GIL) holds every other writer up for as long. Here the same
    statements go as one simple query, which PostgreSQL runs as one implicit transaction
    (all or nothing, committed synchronously at its end): one send and one answer, one wait
    for the GIL instead of one per statement, and the lock is held only while the server
    works. The values are bound client-side by psycopg's ``ClientCursor`` (its quoting, not
    ours). A clash on (originator_id, version) still raises IntegrityError and records
    nothing.
    """

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        values: list[Any] = []
        for event in stored_events:
            values += (event.originator_id, event.originator_version, event.topic, event.state)
        with self.datastore.get_connection() as conn:
            statement = self._one_trip(conn) + ",".join(("(%s,%s,%s,%s)",) * len(stored_events))
            with psycopg.ClientCursor(conn) as curs:
                curs.execute(statement + " RETURNING notification_id", values)
                while curs.nextset():  # the answers of SET, LOCK and NOTIFY come first
                    pass
                rows = curs.fetchall()
        if len(rows) != len(stored_events):
            raise ProgrammingError(f"got {len(rows)} positions for {len(stored_events)} events")
        return [row["notification_id"] for row in rows]

    def _one_trip(self, conn: psycopg.Connection[Any]) -> str:
        """Everything before the INSERT's values, rendered once."""
        prefix: str | None = getattr(self, "_one_trip_prefix", None)
        if prefix is None:
            statements = [*self.lock_table_statements, self._notify_statement()]
            rendered = [_rendered(statement, conn) for statement in statements]
            table = pgsql.SQL("{0}.{1}").format(
                pgsql.Identifier(self.datastore.schema), pgsql.Identifier(self.events_table_name)
            )
            rendered.append(
                f"INSERT INTO {table.as_string(conn)} "
                "(originator_id, originator_version, topic, state) VALUES "
            )
            prefix = self._one_trip_prefix = "; ".join(rendered)
        return prefix

    def _notify_statement(self) -> pgsql.Composable:
        return pgsql.SQL("NOTIFY {0}").format(pgsql.Identifier(self.channel_name))


def _rendered(statement: object, conn: psycopg.Connection[Any]) -> str:
    if isinstance(statement, pgsql.Composable):
        return statement.as_string(conn)
    if isinstance(statement, str):
        return statement
    raise TypeError(f"cannot render {statement!r}")


def event_store_env(settings: Settings, *, create_table: bool = False) -> dict[str, str]:
    """eventsourcing's environment for the configured database."""
    env = {"CREATE_TABLE": "y" if create_table else "n", "ORIGINATOR_ID_TYPE": "uuid"}
    if settings.is_sqlite:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(settings.sqlite_path),
            SQLITE_LOCK_TIMEOUT="30",
            APPLICATION_RECORDER_TOPIC=get_topic(SQLiteEventRecorder),
        )
        return env
    url = make_url(settings.database_url)
    if not url.database:
        raise ConfigurationError(f"no database name in {settings.database_url!r}")
    env.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=url.database,
        POSTGRES_HOST=url.host or "127.0.0.1",
        POSTGRES_PORT=str(url.port or 5432),
        POSTGRES_USER=url.username or "postgres",
        POSTGRES_PASSWORD=url.password or "",
        POSTGRES_POOL_SIZE="5",
        POSTGRES_MAX_OVERFLOW="10",
        POSTGRES_CONNECT_TIMEOUT="5",
        # No ping per checkout (a round trip in front of every save): every recorder method
        # retries on a broken connection with a new one (eventsourcing's @retry on
        # OperationalError/InterfaceError), which covers a database restart.
        POSTGRES_PRE_PING="n",
        POSTGRES_LOCK_TIMEOUT="30",
        POSTGRES_ENABLE_DB_FUNCTIONS="n",
        APPLICATION_RECORDER_TOPIC=get_topic(PostgresEventRecorder),
    )
    return env


class TaskStore(Application):  # type: ignore[type-arg]
    """The event store of tasks and strategies, with an in-process hook after each save."""

    name = APPLICATION_NAME

    def __init__(self, settings: Settings, *, create_table: bool = False) -> None:
        self.settings = settings
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()
        super().__init__(env=event_store_env(settings, create_table=create_table))

    def add_save_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every save of this process (the follower's wake-up)."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[Any]]:
        recordings = super().save(*objs, **kwargs)
        if recordings:
            for listener in list(self._listeners):
                listener()
        return recordings

    def head(self) -> int:
        """The position of the newest event in the log (0 when it is empty)."""
        return int(self.recorder.max_notification_id() or 0)

    def stored_events_of(self, originator_ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of several aggregates, each in version order, in ONE query
        (eventsourcing's recorder reads one aggregate per query; a worker that claimed ten
        tasks would pay ten round trips). Aggregates without events are left out."""
        if not originator_ids:
            return {}
        datastore: Any = getattr(self.recorder, "datastore")  # noqa: B009
        columns = "originator_id, originator_version, topic, state"
        found: dict[UUID, list[StoredEvent]] = {}
        if self.settings.is_sqlite:
            marks = ",".join("?" * len(originator_ids))
            statement = (
                f"SELECT {columns} FROM {EVENTS_TABLE} WHERE originator_id IN ({marks}) "
                "ORDER BY originator_id, originator_version"
            )
            with datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [i.hex for i in originator_ids])
                rows = cursor.fetchall()
        else:
            statement = (
                f"SELECT {columns} FROM {EVENTS_TABLE} WHERE originator_id = ANY(%s) "
                "ORDER BY originator_id, originator_version"
            )
            with datastore.get_connection() as connection, connection.cursor() as cursor:
                cursor.execute(statement, (list(originator_ids),), prepare=True)
                rows = cursor.fetchall()
        for row in rows:
            originator_id = UUID(str(row["originator_id"]))
            found.setdefault(originator_id, []).append(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
        return found

    def positions_of(self, originator_id: UUID) -> Sequence[tuple[int, int]]:
        """(version, position) of every stored event of one aggregate, in order."""
        column = "position" if self.settings.is_sqlite else "notification_id"
        statement = (
            f"SELECT originator_version, {column} FROM {EVENTS_TABLE} "
            "WHERE originator_id = {} ORDER BY originator_version"
        )
        datastore: Any = getattr(self.recorder, "datastore")  # noqa: B009
        if self.settings.is_sqlite:
            with datastore.transaction(commit=False) as cursor:
                cursor.execute(statement.format("?"), (originator_id.hex,))
                return [(int(r[0]), int(r[1])) for r in cursor.fetchall()]
        with datastore.transaction(commit=False) as cursor:
            cursor.execute(statement.format("%s"), (originator_id,))
            return [(int(r["originator_version"]), int(r[column])) for r in cursor.fetchall()]
