"""The one wiring place: builds the event store, services, projector, workers and HTTP app.

Everything here is built from a Settings object on demand; nothing connects at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.outbox import Follower
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.projections.base import Projection
from tasktrail.projections.projector import Projector
from tasktrail.projections.strategy_view import StrategyViewProjection
from tasktrail.projections.task_view import TaskViewProjection
from tasktrail.settings import Settings


@dataclass
class Container:
    """What one process holds: built by ``build``, closed by ``close``."""

    settings: Settings
    store: TaskStore
    sql: sa.Engine
    service: ExecutionService
    parts: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.sql.dispose()
        self.store.close()


def known_kinds() -> list[str]:
    # Replaced by the handler registry once task kinds are registered (see engine.handlers).
    return []


def build(settings: Settings, *, upgrade: bool = True) -> Container:
    """Wire the write side and the read side's database for one process."""
    if upgrade:
        schema.upgrade(settings)
    store = TaskStore(settings)
    sql = create_sql_engine(settings)
    service = ExecutionService(store, known_kinds)
    return Container(settings=settings, store=store, sql=sql, service=service)


# -- the background parts of one process (serve) ------------------------------------------


@dataclass
class Runtime:
    """What runs beside the HTTP app: the outbox follower and its consumers, the workers.

    ``starters``/``stoppers`` let other parts (the worker pool) join without this class
    knowing them; they run in order on start and in reverse on stop.
    """

    follower: Follower
    starters: list[Callable[[], None]] = field(default_factory=list)
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def start(self) -> None:
        self.follower.start()
        for start in self.starters:
            start()

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            stop()
        self.follower.stop()


def read_side_projections() -> list[Projection]:
    """Every projection the projector keeps up to date."""
    return [TaskViewProjection(), StrategyViewProjection()]


def build_runtime(container: Container, *, workers: int = 0) -> Runtime:
    """The follower with the projector as its first consumer (the HTTP app adds its hub),
    and ``workers`` worker threads."""
    follower = Follower(container.store, container.settings)
    follower.add_consumer(Projector(container.sql, read_side_projections()))
    container.parts["follower"] = follower
    return Runtime(follower=follower)
