"""Rebuilding a projection from position 0: blue/green (the default) or in place.

Blue/green: replay the log into shadow tables ``<table>__rebuild`` (no secondary indexes while
loading; one transaction per batch, tracked by the position row ``<name>__rebuild``), build the
indexes, then swap in ONE transaction that first locks the live position row (FOR UPDATE on
PostgreSQL; SQLite transactions hold the write lock), brings the shadow up to the log's head,
drops the serving tables, renames the shadow ones into place and stores the shadow's position
as the live one. The live projector's next batch waits on that row lock, then reads the new
position and skips what the swap already applied: no event is lost or doubled around the swap.
Until the swap, reads are served by the old tables; a crash before it leaves them untouched,
and a rerun drops the stale shadow first.

In place: empty the tables and reset the position to 0 in one transaction, then replay.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from tasktrail.engine.log import read_log
from tasktrail.engine.store import TaskStore
from tasktrail.projections import positions
from tasktrail.projections.base import Projection
from tasktrail.projections.projector import Target, apply_batch

SHADOW = "__rebuild"
BATCH_SIZE = 1000
# Replay passes before the swap, each to the head as it was when the pass began.
REPLAY_PASSES = 2
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RebuildReport:
    name: str
    events: int
    seconds: float
    position: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def shadow_tables(projection: Projection) -> dict[str, sa.Table]:
    """Copies of the projection's tables named ``<table>__rebuild``, indexes renamed too."""
    shadow_metadata = sa.MetaData()
    copies = {}
    for table in projection.tables:
        copy = table.to_metadata(shadow_metadata, name=table.name + SHADOW)
        for index in copy.indexes:
            index.name = sa.sql.quoted_name(f"{index.name}{SHADOW}", None)
        copies[table.name] = copy
    return copies


class Rebuild:
    """Rebuilds one projection from the log."""

    def __init__(
        self,
        sql: sa.Engine,
        store: TaskStore,
        projection: Projection,
        *,
        batch_size: int = BATCH_SIZE,
        on_progress: Progress | None = None,
    ) -> None:
        self.sql = sql
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.on_progress = on_progress or (lambda done, total: None)
        self.shadow = Target(projection, shadow_tables(projection), projection.name + SHADOW)
        self.is_postgres = sql.dialect.name == "postgresql"

    # -- blue/green -----------------------------------------------------------------------

    def blue_green(self) -> RebuildReport:
        started = time.monotonic()
        self.drop_shadow()
        self._create_shadow()
        done = self._replay(self.shadow, 0)
        self._create_shadow_indexes()
        position = self._swap()
        return RebuildReport(self.projection.name, done, time.monotonic() - started, position)

    def drop_shadow(self) -> None:
        """Remove what an interrupted rebuild left behind."""
        with self.sql.begin() as connection:
            for table in self.shadow.tables.values():
                table.drop(connection, checkfirst=True)
            positions.forget(connection, self.shadow.position_name)

    def _create_shadow(self) -> None:
        with self.sql.begin() as connection:
            for table in self.shadow.tables.values():
                connection.execute(sa.schema.CreateTable(table))
            positions.ensure(connection, [self.shadow.position_name])

    def _create_shadow_indexes(self) -> None:
        if not self.is_postgres:
            return  # SQLite cannot rename indexes: they are made under their names at the swap
        with self.sql.begin() as connection:
            for table in self.shadow.tables.values():
                for index in table.indexes:
                    index.create(connection)
                connection.exec_driver_sql(f'ANALYZE "{table.name}"')

    def _replay(self, target: Target, start: int) -> int:
        """Apply the log after ``start`` to ``target``, one transaction per batch, up to the
        head as it was when the replay began, then once more up to the head as it was then.

        Each pass ends at a fixed position: chasing the moving head would never end while
        the log grows faster than a rebuild replays it. What is still newer goes into the
        shadow inside the swap (``_catch_up_in``), or into the serving tables afterwards.
        """
        done, after, next_analyze = 0, start, 1000
        for _ in range(REPLAY_PASSES):
            upto = self.store.head()
            while batch := read_log(self.store, after=after, limit=self.batch_size, upto=upto):
                with self.sql.begin() as connection:
                    after = apply_batch(connection, [target], batch, after)[target.position_name]
                done += len(batch)
                self.on_progress(done, done + max(0, self.store.head() - after))
                if self.is_postgres and done >= next_analyze:
                    # A fresh table is planned as empty: without statistics every update by
                    # id becomes a sequential scan and a big rebuild turns quadratic.
                    self._analyze(target)
                    next_analyze *= 4
        return done

    def _analyze(self, target: Target) -> None:
        with self.sql.connect() as connection:
            for table in target.tables.values():
                connection.exec_driver_sql(f'ANALYZE "{table.name}"')
            connection.commit()

    def _swap(self) -> int:
        live = self.projection.name
        with self.sql.begin() as connection:
            positions.lock(connection, [live, self.shadow.position_name])
            position = self._catch_up_in(connection)
            for name, shadow in self.shadow.tables.items():
                self._replace(connection, name, shadow)
            positions.store(connection, live, position)
            positions.forget(connection, self.shadow.position_name)
        return position

    def _catch_up_in(self, connection: sa.Connection) -> int:
        """Bring the shadow to the head inside the swap transaction; returns its position."""
        after = positions.read(connection, [self.shadow.position_name])[self.shadow.position_name]
        # Up to the head as it is now: the live projector applies what comes after to the
        # swapped tables, from the position stored here (the follower reads again from it).
        upto = self.store.head()
        while batch := read_log(self.store, after=after, limit=self.batch_size, upto=upto):
            after = apply_batch(connection, [self.shadow], batch, after)[self.shadow.position_name]
        return after

    def _replace(self, connection: sa.Connection, name: str, shadow: sa.Table) -> None:
        serving = self._serving_tables()[name]
        serving.drop(connection)
        connection.exec_driver_sql(f'ALTER TABLE "{shadow.name}" RENAME TO "{name}"')
        if self.is_postgres:
            self._rename_postgres_objects(connection, name)
        else:
            for index in serving.indexes:
                index.create(connection)

    def _serving_tables(self) -> Mapping[str, sa.Table]:
        return {t.name: t for t in self.projection.tables}

    @staticmethod
    def _rename_postgres_objects(connection: sa.Connection, name: str) -> None:
        """Constraints and indexes carried the shadow's names across the rename."""
        constraints = connection.execute(
            sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
            {"t": name},
        ).scalars()
        for constraint in list(constraints):
            if SHADOW in constraint:
                connection.exec_driver_sql(
                    f'ALTER TABLE "{name}" RENAME CONSTRAINT "{constraint}" '
                    f'TO "{constraint.replace(SHADOW, "")}"'
                )
        indexes = connection.execute(
            sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": name}
        ).scalars()
        for index in list(indexes):
            if SHADOW in index:
                connection.exec_driver_sql(
                    f'ALTER INDEX "{index}" RENAME TO "{index.replace(SHADOW, "")}"'
                )

    # -- in place -------------------------------------------------------------------------

    def in_place(self) -> RebuildReport:
        started = time.monotonic()
        serving = Target.serving(self.projection)
        with self.sql.begin() as connection:
            positions.lock(connection, [serving.position_name])
            for table in serving.tables.values():
                connection.execute(table.delete())
            positions.store(connection, serving.position_name, 0)
        done = self._replay(serving, 0)
        with self.sql.connect() as connection:
            position = positions.read(connection, [serving.position_name])[serving.position_name]
        return RebuildReport(self.projection.name, done, time.monotonic() - started, position)
