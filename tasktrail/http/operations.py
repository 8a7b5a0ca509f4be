"""Operational endpoints: health, readiness, metrics, projection status, the session cookie."""

from __future__ import annotations

from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tasktrail.http import reads
from tasktrail.http.auth import SESSION_COOKIE, same, session_value, signed_in
from tasktrail.http.body import read_model
from tasktrail.http.context import api_context
from tasktrail.http.metrics import Snapshot
from tasktrail.http.models import SessionIn
from tasktrail.http.problems import UnauthorizedError

READINESS_TIMEOUT_SECONDS = 2.0
SESSION_MAX_AGE_SECONDS = 12 * 3600


async def healthz(_request: Request) -> Response:
    """The process answers (says nothing about the database)."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """200 when the database answers and the projections lag less than the threshold."""
    ctx = api_context(request)
    lag: int | None = None
    with anyio.move_on_after(READINESS_TIMEOUT_SECONDS):
        try:
            lag = await ctx.run_sync(reads.projection_lag, ctx)
        except Exception:  # any failure to read means "not ready", never a 500
            lag = None
    database = lag is not None
    ready = database and lag is not None and lag < ctx.settings.readiness_max_lag
    return JSONResponse({"database": database, "lag": lag}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    ctx = api_context(request)
    snapshot = await ctx.run_sync(metrics_snapshot, ctx)
    body = ctx.metrics.render(snapshot)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def metrics_snapshot(ctx: Any) -> Snapshot:
    status = reads.projection_status(ctx)
    return Snapshot(
        tasks_by_status=reads.counts_by_status(ctx),
        lag_by_projection={p["name"]: p["lag"] for p in status},
        head=max((p["head"] for p in status), default=0),
    )


async def admin_projections(request: Request) -> Response:
    ctx = api_context(request)
    return JSONResponse({"projections": await ctx.run_sync(reads.projection_status, ctx)})


async def session_status(request: Request) -> Response:
    settings = api_context(request).settings
    required = bool(settings.api_token)
    return JSONResponse(
        {"auth_required": required, "signed_in": not required or signed_in(request, settings)}
    )


async def sign_in(request: Request) -> Response:
    """Trade the API token for an HttpOnly SameSite=Strict cookie (EventSource sends it)."""
    settings = api_context(request).settings
    session = await read_model(request, SessionIn, settings.max_body_bytes)
    token = next(
        (t for t in (settings.admin_token, settings.api_token) if t and same(session.token, t)),
        None,
    )
    if settings.api_token is None and token is None:
        return JSONResponse({"auth_required": False, "signed_in": True})
    if token is None:
        raise UnauthorizedError("wrong token")
    response = JSONResponse({"auth_required": True, "signed_in": True})
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
