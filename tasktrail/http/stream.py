"""The SSE endpoints: ``GET /api/stream`` (all events) and ``GET /api/tasks/{id}/stream``.

``id:`` is the event's position. A client resumes from ``Last-Event-ID`` (sent by
EventSource on reconnect) or ``?after=``: it registers with the hub first, then sends the
backlog (from the hub's ring, or from the database up to the hub's watermark when its cursor
is older than the ring), then the live events above what it sent. Every step skips positions
at or below the last one sent, so nothing is sent twice and nothing falls between the steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from tasktrail.engine.history import Step, history_with_states
from tasktrail.engine.log import read_log
from tasktrail.http.context import ApiContext, api_context, parse_task_id
from tasktrail.http.hub import StreamEvent, Subscription, state_loader, stream_event
from tasktrail.http.live_state import TERMINAL_TYPES, StateCache
from tasktrail.http.problems import BadRequestError
from tasktrail.http.sse_response import WatchedEventSourceResponse

T = TypeVar("T")
CATCH_UP_BATCH = 500
MAX_CURSOR = 10**18 - 1  # eighteen digits: the document states it too
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def cursor(request: Request) -> int | None:
    """The position to resume after: ``Last-Event-ID`` wins over ``?after=``; 400 if garbled.

    Both are checked when both are sent, so a garbled ``after`` is refused even when the
    header makes it moot. An empty header means none (as EventSource sends it); an empty
    ``after=`` is garbled.
    """
    after = parse_position(request.query_params.get("after"), "after")
    header = request.headers.get("last-event-id") or None
    resumed = parse_position(header, "Last-Event-ID")
    return resumed if resumed is not None else after


def parse_position(raw: str | None, source: str) -> int | None:
    """A non-negative position from a header or query value; None when absent."""
    if raw is None:
        return None
    text = raw.strip()
    # isdigit() alone admits "²" and other digits int() refuses (that was a 500).
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_CURSOR)):
        raise BadRequestError(f"{source} must be a non-negative integer position, not {raw!r}")
    return int(text)


def frames(events: Sequence[StreamEvent]) -> bytes:
    """Several events as one write: each client's send costs the same for one event or 500,
    so a burst goes out in one send per client instead of one per event."""
    return b"".join(event.wire for event in events)


def event_response(ctx: ApiContext, content: AsyncIterator[ServerSentEvent | bytes]) -> Response:
    settings = ctx.settings
    return WatchedEventSourceResponse(
        content,
        headers=STREAM_HEADERS,
        ping=settings.sse_ping_seconds,
        # A client that cannot take one event within a ping interval is gone or too slow.
        send_timeout=max(1.0, settings.sse_ping_seconds),
    )


# -- all events ------------------------------------------------------------------------------


async def stream_all(request: Request) -> Response:
    """Every event of the log after the cursor (default: only what happens from now on)."""
    ctx = api_context(request)
    after = cursor(request)
    return event_response(ctx, all_events(ctx, after))


async def all_events(ctx: ApiContext, after: int | None) -> AsyncIterator[ServerSentEvent | bytes]:
    deadline = time.monotonic() + ctx.settings.sse_max_connection_seconds
    subscription, backlog, watermark = ctx.hub.subscribe(
        ctx.hub.head if after is None else after, deadline=deadline
    )
    last = watermark if after is None else after
    try:
        yield ServerSentEvent(retry=ctx.settings.sse_retry_ms, comment="tasktrail")
        while True:
            async for chunk in backlog_chunks(ctx, backlog, last, watermark):
                yield frames(chunk)
                last = chunk[-1].position
            async for chunk in live_chunks(subscription, last):
                yield frames(chunk)
                last = chunk[-1].position
            if not fell_behind(subscription):
                return
            # The client read slower than events came: catch up from the ring or the log
            # on this same connection, then carry on live.
            ctx.hub.unsubscribe(subscription)
            subscription, backlog, watermark = ctx.hub.subscribe(last, deadline=deadline)
    finally:
        ctx.hub.unsubscribe(subscription)


def fell_behind(subscription: Subscription) -> bool:
    return subscription.overflowed and not subscription.closed and not subscription.expired


async def backlog_chunks(
    ctx: ApiContext, backlog: list[StreamEvent] | None, after: int, upto: int
) -> AsyncIterator[list[StreamEvent]]:
    """The ring's events above ``after`` or, when the ring no longer reaches back that far
    (``backlog`` is None), the log's events ``after < position <= upto``; in chunks."""
    if backlog is not None:
        fresh = [event for event in backlog if event.position > after]
        for start in range(0, len(fresh), CATCH_UP_BATCH):
            yield fresh[start : start + CATCH_UP_BATCH]
        return
    async for chunk in database_backlog(ctx, after, upto):
        yield chunk


async def database_backlog(ctx: ApiContext, after: int, upto: int) -> AsyncIterator[list[Any]]:
    """Events ``after < position <= upto`` from the log, in chunks, with their task states."""
    cache = StateCache(state_loader(ctx.container.service))

    def read_chunk(start: int) -> list[StreamEvent]:
        batch = read_log(ctx.container.store, start, CATCH_UP_BATCH, upto=upto)
        return [stream_event(e, cache.after(e)) for e in batch]

    while after < upto:
        chunk = await ctx.run_sync(read_chunk, after)
        if not chunk:
            return
        yield chunk
        after = chunk[-1].position


async def live_chunks(
    subscription: Subscription,
    last: int,
    *,
    until: Callable[[StreamEvent], bool] = lambda _e: False,
) -> AsyncIterator[list[StreamEvent]]:
    """Queued live events above ``last``, as many as are waiting at a time, until ``until``
    says stop (after that event), the queue overflows, the server shuts down or the
    subscription expires (the connection's maximum lifetime)."""
    while not subscription.closed and not subscription.expired:
        chunk: list[StreamEvent] = []
        for event in await subscription.take():
            if event.position <= last:
                continue
            chunk.append(event)
            last = event.position
            if until(event):
                yield chunk
                return
        if chunk:
            yield chunk
        if subscription.overflowed and not subscription.queue:
            return


# -- one task --------------------------------------------------------------------------------


async def stream_task(request: Request) -> Response:
    """One task's events after the cursor (default: its whole history), then live ones;
    the stream ends after the terminal event (204 when that was already sent)."""
    ctx = api_context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    after = cursor(request) or 0
    steps = await ctx.run_sync(history_with_states, ctx.container.service, task_id)
    if is_finished_before(steps, after):
        return Response(status_code=204, headers=STREAM_HEADERS)
    return event_response(ctx, task_events(ctx, task_id, after))


def is_finished_before(steps: Sequence[Step], after: int) -> bool:
    last = steps[-1] if steps else None
    return (
        last is not None
        and last.topic in TERMINAL_TYPES
        and last.position is not None
        and last.position <= after
    )


async def task_events(
    ctx: ApiContext, task_id: UUID, after: int
) -> AsyncIterator[ServerSentEvent | bytes]:
    deadline = time.monotonic() + ctx.settings.sse_max_connection_seconds
    subscription, _, _ = ctx.hub.subscribe(ctx.hub.head, str(task_id), deadline=deadline)
    last = after
    try:
        yield ServerSentEvent(retry=ctx.settings.sse_retry_ms, comment="tasktrail")
        while True:
            # Read after registering: whatever commits from here on is in the queue as well.
            steps = await ctx.run_sync(history_with_states, ctx.container.service, task_id)
            for step in steps:
                if step.position is None or step.position <= last:
                    continue
                yield ServerSentEvent(
                    data=step_payload(task_id, step), event=step.topic, id=str(step.position)
                )
                last = step.position
                if step.topic in TERMINAL_TYPES:
                    return
            ended = False
            async for chunk in live_chunks(subscription, last, until=lambda e: e.terminal):
                yield frames(chunk)
                last = chunk[-1].position
                ended = chunk[-1].terminal
            if ended or not fell_behind(subscription):
                return
            ctx.hub.unsubscribe(subscription)
            subscription, _, _ = ctx.hub.subscribe(ctx.hub.head, str(task_id), deadline=deadline)
    finally:
        ctx.hub.unsubscribe(subscription)


def step_payload(task_id: UUID, step: Step) -> str:
    return json.dumps(
        {
            "position": step.position,
            "task_id": str(task_id),
            "version": step.version,
            "type": step.topic,
            "timestamp": step.timestamp,
            "data": step.data,
            "task": {**step.state, "position": step.position},
        },
        separators=(",", ":"),
        default=str,
    )
