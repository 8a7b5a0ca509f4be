"""The one wiring place: builds the event store, services, projector, workers and HTTP app.

Everything here is built from a Settings object on demand; nothing connects at import time.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.group_commit import GroupCommitWriter
from tasktrail.engine.handlers import HandlerRegistry, register_builtin_kinds
from tasktrail.engine.leases import (
    Lease,
    Reaper,
    fail_orphans_at_start_up,
    new_worker_id,
    running_from_task_view,
)
from tasktrail.engine.outbox import Follower
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.worker import CancelLookup, WorkerPool, WorkerSignals
from tasktrail.projections.base import Projection
from tasktrail.projections.projector import Projector
from tasktrail.projections.strategy_view import StrategyViewProjection
from tasktrail.projections.task_view import TaskViewProjection
from tasktrail.projections.work_queue import SqlWorkQueue, WorkQueueProjection
from tasktrail.screening import run as screening_run
from tasktrail.screening.service import StrategyApi, StrategyService
from tasktrail.settings import Settings


@dataclass
class Container:
    """What one process holds: built by ``build``, closed by ``close``."""

    settings: Settings
    store: TaskStore
    sql: sa.Engine
    service: ExecutionService
    # The projector's and the work queue's engine (engine/database.create_sql_engine).
    relaxed_sql: sa.Engine
    parts: dict[str, Any] = field(default_factory=dict)
    registry: HandlerRegistry = field(default_factory=HandlerRegistry)
    strategies: StrategyService | None = None

    def close(self) -> None:
        self.sql.dispose()
        self.relaxed_sql.dispose()
        self.store.close()


def build_registry(settings: Settings) -> HandlerRegistry:
    """Every task kind this process knows: the built-in ones and strategy runs."""
    registry = HandlerRegistry()
    register_builtin_kinds(registry)
    screening_run.register(registry, settings)
    return registry


def build(settings: Settings, *, upgrade: bool = True) -> Container:
    """Wire the write side and the read side's database for one process.

    With ``upgrade`` (a process that owns the database: serve, worker) the schema is brought
    up to date and the example strategies are seeded; read-only tools (replay, audit) pass
    ``upgrade=False`` and write nothing.
    """
    if upgrade:
        schema.upgrade_when_reachable(settings)
    store = TaskStore(settings)
    sql = create_sql_engine(settings)
    registry = build_registry(settings)
    # One group-commit writer per process, shared by submissions and workers (one holder of
    # the log's table lock at a time, and bigger batches); while no runtime runs it, as in
    # the tools, callers record directly.
    writer = GroupCommitWriter(store)
    service = ExecutionService(store, registry.kinds, submissions=writer)
    strategies = StrategyService(store, service)
    if upgrade and settings.seed_examples:
        strategies.seed_examples()
    container = Container(
        settings=settings,
        store=store,
        sql=sql,
        service=service,
        relaxed_sql=create_sql_engine(settings, relaxed=True),
        registry=registry,
        strategies=strategies,
    )
    container.parts["strategies"] = StrategyApi(strategies)
    container.parts["writer"] = writer
    return container


# -- the background parts of one process (serve) ------------------------------------------


# Young objects allowed before a collection (CPython's default is 700): a task's lifecycle
# allocates thousands, so the default collects the youngest generation every few tasks.
COLLECT_AFTER_ALLOCATIONS = 10_000
_collector = threading.Lock()
_collector_quiet = False


def quiet_collector() -> None:
    """Keep the cyclic garbage collector from pausing the process for tens of milliseconds,
    once per process, when the runtime first starts.

    What is alive at start-up (modules, SQLAlchemy's compiled caches, the container) is
    moved out of the collector's sight (``gc.freeze``), so a full collection walks only what
    was made since; and collections are rarer. Each pause stopped every thread of the
    process at once: it was the longest stall of the event loop at 2,000 SSE streams (p99
    ~210 -> 75-115 ms) and the longest wait of a record for the group-commit writer (36-57
    -> mostly 12-23 ms; docs/benchmarks.md). Reference counting still frees what
    goes out of use; only cycles among frozen objects would stay, and those are start-up
    objects that live as long as the process.
    """
    global _collector_quiet
    with _collector:
        if _collector_quiet:
            return
        _collector_quiet = True
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(COLLECT_AFTER_ALLOCATIONS, older, oldest)


@dataclass
class Runtime:
    """What runs beside the HTTP app: the outbox follower and its consumers, the workers.

    ``starters``/``stoppers`` let other parts (the worker pool) join without this class
    knowing them; they run in order on start and in reverse on stop. ``releasers`` run after
    the follower has stopped (the projector gives up its lock then, so it cannot retake it).
    """

    follower: Follower
    starters: list[Callable[[], None]] = field(default_factory=list)
    stoppers: list[Callable[[], None]] = field(default_factory=list)
    releasers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        quiet_collector()
        self.follower.start()
        for start in self.starters:
            start()

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            stop()
        self.follower.stop()
        for release in self.releasers:
            release()


def read_side_projections() -> list[Projection]:
    """Every projection the projector keeps up to date."""
    return [TaskViewProjection(), StrategyViewProjection(), WorkQueueProjection()]


def build_runtime(container: Container, *, workers: int = 0, project: bool = True) -> Runtime:
    """The follower with the projector as its first consumer (the HTTP app adds its hub),
    and ``workers`` worker threads. On PostgreSQL the projector is active only while it holds
    the projector lock; every other process's projector stands by. Without ``project`` (a
    worker process whose parent projects) there is no projector."""
    follower = Follower(container.store, container.settings)
    container.parts["follower"] = follower
    runtime = Runtime(follower=follower)
    if project:
        projector = Projector(container.relaxed_sql, read_side_projections())
        follower.add_consumer(projector)
        container.parts["projector"] = projector
        runtime.releasers.append(projector.release)
    writer: GroupCommitWriter = container.parts["writer"]
    # Started first and stopped last (stoppers run in reverse): what is queued is recorded.
    runtime.starters.append(writer.start)
    runtime.stoppers.append(writer.stop)
    add_work(container, runtime, workers)
    return runtime


# -- workers and the reaper ---------------------------------------------------------------


def build_worker_pool(
    container: Container, concurrency: int, *, follower: Follower | None = None
) -> WorkerPool:
    """A pool of ``concurrency`` worker threads with its lease; with ``follower``, it wakes
    when tasks are queued and hears cancel requests at once."""
    settings = container.settings
    lease = Lease(container.sql, settings, new_worker_id())
    pool = WorkerPool(
        container.service,
        container.registry,
        SqlWorkQueue(container.relaxed_sql, claim_seconds=settings.lease_seconds),
        settings,
        concurrency=concurrency,
        writer=container.parts["writer"],
        lease=lease,
        cancel_lookup=CancelLookup(container.sql, sqlite=settings.is_sqlite),
        running=running_from_task_view(container.sql),
    )
    if follower is not None:
        follower.add_consumer(WorkerSignals(pool, container.store.head))
    container.parts["workers"] = pool
    return pool


def build_reaper(container: Container) -> Reaper:
    return Reaper(container.service, container.sql, container.settings)


def add_work(container: Container, runtime: Runtime, workers: int) -> None:
    """The reaper, and ``workers`` worker threads; the embedded single process (SQLite)
    first fails the RUNNING tasks its previous run left behind (plan 8.3)."""
    reaper = build_reaper(container)
    pool = build_worker_pool(container, workers, follower=runtime.follower) if workers else None

    def start() -> None:
        if container.settings.is_sqlite:
            runtime.follower.wait_for_head(timeout=10.0)
            fail_orphans_at_start_up(reaper, pool.worker_id if pool else None)
        if pool is not None:
            pool.start()
        reaper.start()

    def stop() -> None:
        reaper.stop()
        if pool is not None:
            pool.stop()

    runtime.starters.append(start)
    runtime.stoppers.append(stop)
