"""``/api/tasks``: submit any registered kind, list, get, cancel, history, result, rerun."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tasktrail.engine import digest
from tasktrail.engine.history import history_with_states, task_state
from tasktrail.engine.service import CancelOutcome, ExecutionService
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.errors import ConflictError
from tasktrail.http import reads
from tasktrail.http.body import read_model
from tasktrail.http.context import ApiContext, api_context, parse_task_id
from tasktrail.http.models import TaskSubmit
from tasktrail.http.problems import BadRequestError

SUBMITTER = "api"
MAX_IDEMPOTENCY_KEY = 200


def links(task_id: str) -> dict[str, str]:
    base = f"/api/tasks/{task_id}"
    return {
        "self": base,
        "events": f"{base}/events",
        "stream": f"{base}/stream",
        "cancel": f"{base}/cancel",
        "result": f"{base}/result",
        "page": f"/tasks/{task_id}",
    }


def accepted(task: ExecutionTask) -> Response:
    """202 with the task's id, status, links and a Location header."""
    task_id = str(task.id)
    body = {"task_id": task_id, "status": task.status.value, "links": links(task_id)}
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/tasks/{task_id}"})


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequestError(f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} characters")
    return key


async def submit_task(request: Request) -> Response:
    ctx = api_context(request)
    submission = await read_model(request, TaskSubmit, ctx.settings.max_body_bytes)
    task = await ctx.run_sync(
        ctx.container.service.start_execution,
        submission.kind,
        submission.parameters,
        submitted_by=SUBMITTER,
        idempotency_key=idempotency_key(request),
    )
    return accepted(task)


async def list_tasks(request: Request) -> Response:
    ctx = api_context(request)
    query = reads.task_query(request.query_params)
    page = await ctx.run_sync(reads.task_page, ctx, query)
    return JSONResponse(page)


async def get_task(request: Request) -> Response:
    ctx = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    raw_version = request.query_params.get("at_version")
    if raw_version is not None:
        version = reads.positive_int(raw_version, "at_version")
        return JSONResponse(await ctx.run_sync(state_at, ctx.container.service, task_id, version))
    return JSONResponse(await ctx.run_sync(reads.task_response, ctx, task_id))


def state_at(service: ExecutionService, task_id: UUID, version: int) -> dict[str, Any]:
    """The task right after its event ``version``, computed from the log."""
    state = task_state(service.state_at(task_id, version))
    positions = dict(service.store.positions_of(task_id))
    return {**state, "position": positions.get(version)}


async def cancel_task(request: Request) -> Response:
    ctx = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    outcome = await ctx.run_sync(ctx.container.service.cancel_task, task_id, requested_by=SUBMITTER)
    status = 202 if outcome is CancelOutcome.REQUESTED else 200
    return JSONResponse({"task_id": str(task_id), "outcome": outcome.value}, status_code=status)


async def task_history(request: Request) -> Response:
    ctx = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    return JSONResponse(await ctx.run_sync(history, ctx.container.service, task_id))


def history(service: ExecutionService, task_id: UUID) -> dict[str, Any]:
    steps = history_with_states(service, task_id)
    verified = not digest.verify(service.history(task_id))
    return {"task_id": str(task_id), "events": [s.as_json() for s in steps], "verified": verified}


async def task_result(request: Request) -> Response:
    ctx = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    task = await ctx.run_sync(ctx.container.service.get_task, task_id)
    if task.status is not TaskStatus.COMPLETED or task.result is None:
        raise ConflictError(f"task {task_id} is {task.status.value}: it has no result")
    return JSONResponse(task.result)


async def rerun_task(request: Request) -> Response:
    ctx: ApiContext = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    task = await ctx.run_sync(
        ctx.container.service.rerun,
        task_id,
        submitted_by=SUBMITTER,
        idempotency_key=idempotency_key(request),
    )
    return accepted(task)
