"""The Starlette app, built from a bootstrap Container: routes, errors, auth, lifespan.

The lifespan starts the process's background parts (the outbox follower with the projector
and this app's SSE hub, the worker pool) and stops them; their blocking calls run in the
database thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from anyio import CapacityLimiter
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from tasktrail.bootstrap import Container, Runtime
from tasktrail.errors import TasktrailError
from tasktrail.http import problems
from tasktrail.http.auth import TokenMiddleware
from tasktrail.http.context import DATABASE_THREADS, ApiContext, api_context
from tasktrail.http.hub import Hub
from tasktrail.http.metrics import Metrics
from tasktrail.http.openapi import document, routes
from tasktrail.http.routes import OPERATIONS

STATIC_DIR = resources.files("tasktrail.http") / "static"


async def openapi_document(request: Request) -> Response:
    settings = api_context(request).settings
    return JSONResponse(document(OPERATIONS, secured=bool(settings.api_token)))


async def page(_request: Request) -> Response:
    """The web page (one HTML file; it routes ``/tasks/{id}`` itself)."""
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        return problems.problem(404, "Not found", "the web page is not installed")
    return FileResponse(str(index), media_type="text/html")


def page_routes() -> list[BaseRoute]:
    return [
        Route("/", page, methods=["GET"]),
        Route("/tasks/{task_id}", page, methods=["GET"]),
        Route("/api/openapi.json", openapi_document, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(STATIC_DIR), check_dir=False), name="static"),
    ]


def create_app(container: Container, runtime: Runtime | None = None) -> Starlette:
    """The HTTP app of one process; with ``runtime``, its lifespan runs the background."""
    hub = Hub(container.service, container.settings)
    context = ApiContext(container, hub, CapacityLimiter(DATABASE_THREADS), Metrics(hub))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        head = await context.run_sync(container.store.head)
        hub.start(asyncio.get_running_loop(), head)
        if runtime is not None:
            runtime.follower.add_consumer(hub)
            await context.run_sync(runtime.start)
        try:
            yield
        finally:
            hub.close()
            if runtime is not None:
                await context.run_sync(runtime.stop)

    handlers: dict[Any, Any] = {
        TasktrailError: problems.tasktrail_error_handler,
        HTTPException: problems.http_exception_handler,
        Exception: problems.unexpected_error_handler,
    }
    app = Starlette(
        routes=[*routes(OPERATIONS), *page_routes()],
        middleware=[Middleware(TokenMiddleware, settings=container.settings)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.api = context
    return app
