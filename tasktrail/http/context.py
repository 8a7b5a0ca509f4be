"""What every endpoint reaches through ``request.app.state``: the container, hub, metrics.

eventsourcing and SQLAlchemy are synchronous, so endpoints call them through ``run_sync``,
a thread pool whose size matches the database pools (more threads would only queue on them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

from tasktrail.bootstrap import Container
from tasktrail.engine.service import TaskNotFoundError
from tasktrail.http.hub import Hub
from tasktrail.http.metrics import Metrics
from tasktrail.settings import Settings

T = TypeVar("T")
# eventsourcing's PostgreSQL pool (5 + 10 overflow) plus SQLAlchemy's (5 + 5), less a margin
# for the follower and the workers, which hold their own connections.
DATABASE_THREADS = 16


@dataclass
class ApiContext:
    """One app's collaborators."""

    container: Container
    hub: Hub
    limiter: CapacityLimiter
    metrics: Metrics

    @property
    def settings(self) -> Settings:
        return self.container.settings

    async def run_sync(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the database thread pool."""
        call = functools.partial(function, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.limiter)


def api_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


def parse_task_id(raw: str) -> UUID:
    """A task id from a URL; an id that is not a UUID names no task (404)."""
    try:
        return UUID(raw)
    except ValueError:
        raise TaskNotFoundError(raw) from None
