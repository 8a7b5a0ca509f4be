"""``/api/strategies``: list, get, create, execute; ``/api/metrics/catalog``."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tasktrail.engine.task import ExecutionTask
from tasktrail.errors import NotFoundError
from tasktrail.http import reads
from tasktrail.http.api_tasks import SUBMITTER, accepted, idempotency_key
from tasktrail.http.body import read_model
from tasktrail.http.context import ApiContext, api_context
from tasktrail.http.models import StrategyCreate


class StrategyUseCases(Protocol):
    """What the API needs of screening's StrategyService (wired by the bootstrap)."""

    def create(self, definition: dict[str, Any]) -> dict[str, Any]: ...

    def get(self, strategy_id: str) -> dict[str, Any]: ...

    def execute(
        self, strategy_id: str, *, submitted_by: str, idempotency_key: str | None
    ) -> ExecutionTask: ...

    def catalog(self) -> dict[str, Any]: ...


def strategies(ctx: ApiContext) -> StrategyUseCases:
    service: StrategyUseCases | None = ctx.container.parts.get("strategies")
    if service is None:
        raise NotFoundError("strategies are not available in this process")
    return service


async def list_strategies(request: Request) -> Response:
    ctx = api_context(request)
    return JSONResponse(await ctx.run_sync(reads.strategies, ctx))


def path_strategy_id(request: Request) -> str:
    """The strategy id from the URL; one that is not a UUID names no strategy (404)."""
    raw = request.path_params["strategy_id"]
    try:
        return str(UUID(raw))
    except ValueError:
        raise NotFoundError(f"no strategy with id {raw!r}") from None


async def get_strategy(request: Request) -> Response:
    ctx = api_context(request)
    strategy_id = path_strategy_id(request)
    return JSONResponse(await ctx.run_sync(strategy_now, ctx, strategy_id))


def strategy_now(ctx: ApiContext, strategy_id: str) -> dict[str, Any]:
    """From the view; a strategy created a moment ago comes from the write side."""
    try:
        return reads.strategy(ctx, strategy_id)
    except NotFoundError:
        return strategies(ctx).get(strategy_id)


async def create_strategy(request: Request) -> Response:
    ctx = api_context(request)
    definition = await read_model(request, StrategyCreate, ctx.settings.max_body_bytes)
    created = await ctx.run_sync(strategies(ctx).create, definition.model_dump(exclude_none=True))
    return JSONResponse(
        created, status_code=201, headers={"Location": f"/api/strategies/{created['id']}"}
    )


async def execute_strategy(request: Request) -> Response:
    ctx = api_context(request)
    task = await ctx.run_sync(
        strategies(ctx).execute,
        path_strategy_id(request),
        submitted_by=SUBMITTER,
        idempotency_key=idempotency_key(request),
    )
    return accepted(task)


async def metric_catalog(request: Request) -> Response:
    ctx = api_context(request)
    return JSONResponse(strategies(ctx).catalog())
