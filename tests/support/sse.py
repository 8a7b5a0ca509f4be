"""A small Server-Sent Events client for tests: records every event and resumes like a browser.

``StreamRecorder`` reads one stream in a thread and, when the connection drops (a node was
killed, nginx closed it), reconnects with ``Last-Event-ID`` as an EventSource does, until
stopped. Tests then compare what it received with the event log. Parsing follows the
WHATWG rules we rely on (id, event, data, comments); it is hand-written because httpx-sse
has no reconnecting client.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class SseEvent:
    id: str | None
    event: str
    data: str
    received_at: float

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class SseComment:
    text: str
    received_at: float


def parse(lines: Iterator[str]) -> Iterator[SseEvent | SseComment]:
    """Events and comments from the lines of a text/event-stream body."""
    event_id: str | None = None
    event_type = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if line == "":
            if data:
                yield SseEvent(event_id, event_type, "\n".join(data), time.monotonic())
            event_type, data = "message", []
            continue
        if line.startswith(":"):
            yield SseComment(line[1:].strip(), time.monotonic())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)


@dataclass
class StreamRecorder:
    """Follows ``url`` in a thread, reconnecting with Last-Event-ID until ``stop()``."""

    url: str
    name: str = "client"
    last_event_id: str | None = None
    read_timeout: float = 40.0
    events: list[SseEvent] = field(default_factory=list)
    connections: int = 0
    pings: int = 0
    errors: list[str] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _response: httpx.Response | None = None

    def start(self) -> StreamRecorder:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # closing from another thread may race
                response.close()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> list[SseEvent]:
        with self._lock:
            return list(self.events)

    def positions(self) -> list[int]:
        return [int(e.id) for e in self.snapshot() if e.id is not None]

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` events arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.events) >= count:
                return True
            time.sleep(0.05)
        return len(self.events) >= count

    def _run(self) -> None:
        timeout = httpx.Timeout(5.0, read=self.read_timeout)
        with httpx.Client(timeout=timeout) as client:
            while not self._stopping.is_set():
                try:
                    self._follow(client)
                except (httpx.HTTPError, httpx.StreamError, OSError) as error:
                    self.errors.append(f"{type(error).__name__}: {error}")
                if not self._stopping.is_set():
                    time.sleep(0.2)  # an EventSource's retry delay, kept short for tests

    def _follow(self, client: httpx.Client) -> None:
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "gzip"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        with client.stream("GET", self.url, headers=headers) as response:
            if response.status_code != 200:
                self.errors.append(f"HTTP {response.status_code}")
                return
            self._response = response
            self.connections += 1
            self.connected.set()
            for item in parse(response.iter_lines()):
                if self._stopping.is_set():
                    return
                if isinstance(item, SseComment):
                    self.pings += 1
                    continue
                with self._lock:
                    self.events.append(item)
                if item.id is not None:
                    self.last_event_id = item.id
