"""The one wiring place: builds the event store, services, projector, workers and HTTP app.

Everything here is built from a Settings object on demand; nothing connects at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
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
