"""The process's SSE hub: one outbox consumer feeding every open stream.

The follower hands the hub each batch of the log (in its own thread); the hub folds the task
state after each event, serialises the event once, and passes the batch to the event loop,
where it lands in a ring of the newest events and in each client's bounded queue. Everything
that touches the ring and the queues runs on the loop, so registering a client and taking
the ring's backlog happen in one step: no event can fall between them.

A client whose queue overflows is marked; once it has sent what it holds, its stream
subscribes again from its last position and catches up from the ring or the log on the same
connection. A client that stops reading altogether is closed by the send timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sse_starlette import ServerSentEvent

from tasktrail.engine.history import task_state
from tasktrail.engine.log import LogEvent
from tasktrail.engine.service import ExecutionService
from tasktrail.errors import NotFoundError
from tasktrail.http.live_state import TERMINAL_TYPES, State, StateCache
from tasktrail.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamEvent:
    """One log event ready to send: its position, whose it is, its JSON ``data``, and its
    SSE frame, encoded once for every client."""

    position: int
    task_id: str
    topic: str
    payload: str
    wire: bytes

    @property
    def terminal(self) -> bool:
        return self.topic in TERMINAL_TYPES


def stream_event(event: LogEvent, state: State | None) -> StreamEvent:
    """The SSE form of ``event`` with the task's state after it."""
    body: dict[str, Any] = {
        "position": event.position,
        "task_id": str(event.originator_id),
        "version": event.version,
        "type": event.topic,
        "timestamp": event.timestamp.isoformat(),
        "data": event.data,
        "task": None if state is None else {**state, "position": event.position},
    }
    payload = json.dumps(body, separators=(",", ":"), default=str)
    return StreamEvent(
        position=event.position,
        task_id=body["task_id"],
        topic=event.topic,
        payload=payload,
        wire=ServerSentEvent(data=payload, event=event.topic, id=str(event.position)).encode(),
    )


def state_loader(service: ExecutionService) -> Any:
    """A StateCache loader reading the write side (None when the task is gone)."""

    def load(task_id: UUID, version: int) -> State | None:
        try:
            return task_state(service.state_at(task_id, version))
        except NotFoundError:
            return None

    return load


class Subscription:
    """One client's bounded queue of live events (touched on the event loop only).

    It expires at its stream's ``deadline`` (``time.monotonic()`` seconds; the connection's
    maximum lifetime): one timer per subscription, set on the loop when it is made, not one
    per wait (at 2,000 streams and 50 events/s that was 100,000 timers made and cancelled a
    second, each a push on the loop's heap of Python-compared timer handles).
    """

    def __init__(self, limit: int, task_id: str | None, deadline: float | None = None) -> None:
        self.task_id = task_id
        self.limit = limit
        self.queue: deque[StreamEvent] = deque()
        self.overflowed = False
        self.closed = False
        self.expired = False
        # The future take() waits on: a plain future, not asyncio.wait_for (which makes a
        # task per wait: py-spy put a fifth of a 2,000-stream server's CPU there).
        self._waiter: asyncio.Future[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        if deadline is not None:
            self._expiry = asyncio.get_running_loop().call_later(
                max(0.0, deadline - time.monotonic()), self._expire
            )

    def offer(self, events: Sequence[StreamEvent]) -> None:
        if self.overflowed:
            # Queuing anything after a dropped event would open a gap in the client's view.
            return
        for event in events:
            if self.task_id is not None and event.task_id != self.task_id:
                continue
            if len(self.queue) >= self.limit:
                self.overflowed = True
                break
            self.queue.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    def detach(self) -> None:
        """No longer served (unsubscribed): its expiry timer goes."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None

    async def take(self) -> list[StreamEvent]:
        """The queued events, waiting for one to arrive unless closed or expired (then the
        list may be empty)."""
        if not self.queue and not self.closed and not self.expired:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        events = list(self.queue)
        self.queue.clear()
        return events

    def _expire(self) -> None:
        self._expiry = None
        self.expired = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Hub:
    """The SSE hub, an outbox consumer (``name``, ``position``, ``handle``)."""

    name = "sse-hub"

    def __init__(self, service: ExecutionService, settings: Settings) -> None:
        self.settings = settings
        self.ring: deque[StreamEvent] = deque(maxlen=max(1, settings.sse_ring_size))
        # The ring holds every event after ``floor`` (older ones were dropped or predate it).
        self.floor = 0
        self.head = 0
        self._subscriptions: set[Subscription] = set()
        self._states = StateCache(state_loader(service))
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0
        # Called (in the follower's thread) with each event's commit-to-delivery seconds.
        self.on_delivery: Callable[[float], None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop, head: int) -> None:
        """Serve live events after ``head`` (the log's head now), published on ``loop``."""
        self._loop = loop
        self.floor = self.head = head

    # -- the consumer side (the follower's thread) -------------------------------------------

    def position(self) -> int:
        return self.head

    def handle(self, batch: Sequence[LogEvent]) -> None:
        events = [stream_event(e, self._states.after(e)) for e in batch]
        if self.on_delivery is not None:
            now = datetime.now(UTC)
            for event in batch:
                self.on_delivery(max(0.0, (now - event.timestamp).total_seconds()))
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._publish, events)
        except RuntimeError:
            log.debug("event loop closed; dropping %d live events", len(events))

    # -- the loop side -------------------------------------------------------------------------

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    def _publish(self, events: list[StreamEvent]) -> None:
        fresh = [e for e in events if e.position > self.head]
        if not fresh:
            return
        for event in fresh:
            if len(self.ring) == self.ring.maxlen:
                self.floor = self.ring[0].position
            self.ring.append(event)
        self.head = fresh[-1].position
        self.delivered += len(fresh)
        for subscription in list(self._subscriptions):
            subscription.offer(fresh)

    def subscribe(
        self, after: int, task_id: str | None = None, *, deadline: float | None = None
    ) -> tuple[Subscription, list[StreamEvent] | None, int]:
        """Register a client (until ``deadline``, see Subscription); returns it, the ring's
        events after ``after`` and the watermark.

        The backlog is None when ``after`` is older than the ring: the caller then reads the
        database up to the watermark (the hub's head now); live events above it are queued.
        """
        subscription = Subscription(max(1, self.settings.sse_queue_size), task_id, deadline)
        self._subscriptions.add(subscription)
        if after < self.floor:
            return subscription, None, self.head
        backlog: list[StreamEvent] = []
        for event in reversed(self.ring):
            if event.position <= after:
                break
            if task_id is None or event.task_id == task_id:
                backlog.append(event)
        backlog.reverse()
        return subscription, backlog, self.head

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.detach()

    def close(self) -> None:
        """End every open stream (the server is shutting down)."""
        for subscription in list(self._subscriptions):
            subscription.close()
