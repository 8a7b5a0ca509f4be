"""sse-starlette's EventSourceResponse with its per-send timeout kept by one watchdog.

sse-starlette bounds every send with ``anyio.move_on_after(send_timeout)``: a cancel scope
entered and left for each event sent to each client (py-spy put about a quarter of a
2,000-stream server's CPU under those sends; without the scopes p99 went from 735 to 640 ms,
benchmarks/sse_fanout.py). Here a send only notes when the stream's pending sends last made
progress; one watchdog task per event loop looks a few times per timeout and cancels the
stream whose sends have made none for longer than its ``send_timeout`` (a client that
stopped reading).
The stream then ends as sse-starlette's own does on a timeout: its body iterator is closed and
``SendTimeoutError`` ends the response; the client resumes from its last event id.

This relies on two of sse-starlette's methods (``_send_with_timeout``, ``_stream_response``);
tests/http/test_slow_client.py fails if a release changes them.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Message, Send

# How often the watchdog looks, as a fraction of the shortest timeout it watches.
CHECKS_PER_TIMEOUT = 4


class WatchedEventSourceResponse(EventSourceResponse):
    """An EventSourceResponse whose sends are timed by the loop's ``SendWatchdog``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # While sends are pending (the data stream's and a ping's may overlap): when they
        # last made progress (one began with none pending, or one ended).
        self.sending_since: float | None = None
        self._pending_sends = 0
        self.scope: anyio.CancelScope | None = None

    async def _send_with_timeout(self, send: Send, message: Message) -> None:
        if self._pending_sends == 0:
            self.sending_since = time.monotonic()
        self._pending_sends += 1
        try:
            await send(message)
        except BaseException:
            self._send_interrupted = True
            raise
        finally:
            self._pending_sends -= 1
            self.sending_since = time.monotonic() if self._pending_sends else None

    async def _stream_response(self, send: Send) -> None:
        watchdog = SendWatchdog.of_running_loop()
        with anyio.CancelScope() as scope:
            self.scope = scope
            watchdog.watch(self)
            try:
                await super()._stream_response(send)
            finally:
                watchdog.forget(self)
        if scope.cancelled_caught:
            self._send_interrupted = True
            raise SendTimeoutError()


class SendWatchdog:
    """Cancels the streams whose current send has outlived their ``send_timeout``."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SendWatchdog] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self._watched: set[WatchedEventSourceResponse] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of_running_loop(cls) -> SendWatchdog:
        loop = asyncio.get_running_loop()
        watchdog = cls._by_loop.get(loop)
        if watchdog is None:
            watchdog = cls._by_loop[loop] = cls()
        return watchdog

    def watch(self, response: WatchedEventSourceResponse) -> None:
        self._watched.add(response)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def forget(self, response: WatchedEventSourceResponse) -> None:
        self._watched.discard(response)

    async def _run(self) -> None:
        """Until no stream is left to watch (it starts again with the next one)."""
        while self._watched:
            timeouts = [r.send_timeout for r in self._watched if r.send_timeout]
            await asyncio.sleep(min(timeouts, default=1.0) / CHECKS_PER_TIMEOUT)
            moment = time.monotonic()
            for response in list(self._watched):
                since, limit = response.sending_since, response.send_timeout
                if since is not None and limit and moment - since > limit and response.scope:
                    response.scope.cancel()
