"""The work queue: one row per task waiting for a worker, and claims on those rows.

``WorkQueueProjection`` keeps ``work_queue`` in step with the log: a row on ``task.created``,
gone on ``task.started``, ``task.cancelled`` or any terminal event. ``SqlWorkQueue`` is the
engine's ``WorkQueue``: a claim reserves rows for a lease (PostgreSQL: ``FOR UPDATE SKIP
LOCKED``, so concurrent claimers never wait on each other; SQLite: the ``BEGIN IMMEDIATE``
transaction of ``engine.database`` serialises claimers). A claim only reserves: appending
Started decides who runs a task.

The ``workers`` table (leases) belongs to the engine; it is mirrored into the read side's
metadata here so the migrations test compares every tasktrail table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

import sqlalchemy as sa

from tasktrail.engine.leases import workers
from tasktrail.engine.log import LogEvent
from tasktrail.projections.base import insert_rows, metadata, one_of

NAME = "work_queue"
LEAVING_TOPICS = frozenset({"task.started", "task.cancelled", "task.completed", "task.failed"})
DEFAULT_CLAIM_SECONDS = 30.0

work_queue = sa.Table(
    NAME,
    metadata,
    sa.Column("task_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(200), nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_work_queue_kind_position", "kind", "position"),
)

workers_table = workers.to_metadata(metadata)


class WorkQueueProjection:
    """Keeps ``work_queue`` holding exactly the tasks that wait for a worker."""

    name = NAME
    tables: Sequence[sa.Table] = (work_queue,)

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        table = tables[NAME]
        task_id = str(event.originator_id)
        if event.topic == "task.created":
            row = {
                "task_id": task_id,
                "kind": str(event.data.get("kind", "")),
                "submitted_at": event.timestamp,
                "position": event.position,
            }
            connection.execute(table.insert().values(row))
        elif event.topic in LEAVING_TOPICS:
            connection.execute(table.delete().where(table.c.task_id == task_id))

    def apply_batch(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], events: Sequence[LogEvent]
    ) -> None:
        """The same as ``apply`` for each event, in two statements: a task created and started
        within the batch never touches the table."""
        table = tables[NAME]
        waiting: dict[str, dict[str, object]] = {}
        leaving: set[str] = set()
        for event in events:
            task_id = str(event.originator_id)
            if event.topic == "task.created":
                waiting[task_id] = {
                    "task_id": task_id,
                    "kind": str(event.data.get("kind", "")),
                    "submitted_at": event.timestamp,
                    "position": event.position,
                }
            elif event.topic in LEAVING_TOPICS and waiting.pop(task_id, None) is None:
                leaving.add(task_id)
        insert_rows(connection, table, list(waiting.values()))
        if leaving:
            postgres = connection.dialect.name == "postgresql"
            connection.execute(_delete(table, postgres), {"ids": sorted(leaving)})


@lru_cache(maxsize=128)
def _delete(table: sa.Table, postgres: bool) -> sa.Delete:
    return table.delete().where(one_of(table.c.task_id, "ids", postgres))


class SqlWorkQueue:
    """Claims on ``work_queue`` rows; the engine's ``WorkQueue``."""

    def __init__(self, sql: sa.Engine, *, claim_seconds: float = DEFAULT_CLAIM_SECONDS) -> None:
        self.sql = sql
        self.claim_seconds = claim_seconds
        self._claim = claim_statement()

    def claim(self, worker_id: str, kinds: Sequence[str], limit: int) -> Sequence[UUID]:
        """Up to ``limit`` unclaimed (or expired-claim) tasks of ``kinds``, oldest first."""
        if limit <= 0 or not kinds:
            return []
        now = datetime.now(UTC)
        values = {
            "kinds": list(kinds),
            "now": now,
            "limit": limit,
            "worker": worker_id,
            "until": now + timedelta(seconds=self.claim_seconds),
        }
        with self._autocommit() as connection:
            rows = connection.execute(self._claim, values).all()
        return [UUID(task_id) for task_id, _ in sorted(rows, key=lambda row: row[1])]

    def release(self, task_id: UUID) -> None:
        with self._autocommit() as connection:
            connection.execute(
                work_queue.update()
                .where(work_queue.c.task_id == str(task_id))
                .values(claimed_by=None, claimed_until=None)
            )

    def _autocommit(self) -> AbstractContextManager[sa.Connection]:
        """A connection for one statement, its own transaction (one round trip, not three, on
        PostgreSQL; SQLite's write lock is taken by the BEGIN IMMEDIATE of engine.database)."""
        if self.sql.dialect.name == "postgresql":
            return self.sql.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.sql.begin()

    def waiting(self) -> int:
        """How many tasks wait (claimed or not)."""
        with self.sql.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(work_queue)).scalar_one()
            )


def claim_statement() -> sa.Update:
    """One round trip: mark the oldest claimable rows and return them (on PostgreSQL the rows
    are picked ``FOR UPDATE SKIP LOCKED``, so concurrent claimers never wait on each other)."""
    table = work_queue
    claimable = (
        sa.select(table.c.task_id)
        .where(table.c.kind.in_(sa.bindparam("kinds", expanding=True)))
        .where(sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < sa.bindparam("now")))
        .order_by(table.c.position)
        .limit(sa.bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    return (
        table.update()
        .where(table.c.task_id.in_(claimable.scalar_subquery()))
        .values(claimed_by=sa.bindparam("worker"), claimed_until=sa.bindparam("until"))
        .returning(table.c.task_id, table.c.position)
    )
