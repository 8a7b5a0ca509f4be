"""A client that stops reading /api/stream is closed, slows no one, and loses nothing.

The stuck client is a raw socket with a tiny receive buffer that reads nothing while
megabytes of events are written: the server does not buffer for it without bound but closes
it when a send has waited a ping interval. A reading client beside it, slower than the burst
(its queue of ``sse_queue_size`` overflows), catches up on its one connection and receives
every event once; the stuck one reconnects with Last-Event-ID and gets the rest.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_harness import Server, serve
from support.sse import SseEvent, StreamRecorder, parse
from test_stream import log_positions

EVENTS = 1500
BLOB = "x" * 4000  # ~6 MB in all: far more than the socket buffers hold
PING_SECONDS = 2.0  # also the send timeout


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(
        module_database_url,
        tmp_path_factory.mktemp("logs"),
        sse_queue_size=16,
        sse_ping_seconds=PING_SECONDS,
    ) as running:
        yield running


def connect_without_reading(server: Server, after: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.process.port))
    request = f"GET /api/stream?after={after} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sent, until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    raise AssertionError("the server never closed the slow client")


def events_in(raw: bytes) -> list[SseEvent]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"200", head
    lines = iter(body.decode().splitlines())
    return [item for item in parse(lines) if isinstance(item, SseEvent) and item.id is not None]


def test_a_slow_client_is_closed_and_resumes_exactly(server: Server, tmp_path: Path) -> None:
    start = server.writer.store.head()
    fast = StreamRecorder(f"{server.base_url}/api/stream?after={start}", name="fast").start()
    assert fast.connected.wait(10)
    slow = connect_without_reading(server, start)
    try:
        time.sleep(0.5)  # let the server register the slow client before the burst
        for _ in range(EVENTS):
            server.writer.submit(blob=BLOB)
        expected = [p for p in log_positions(server) if p > start]
        assert len(expected) == EVENTS
        assert fast.wait_for(EVENTS, timeout=60), len(fast.events)
        time.sleep(3 * PING_SECONDS)  # still not reading: a send waits out its timeout
        received = [int(e.id) for e in events_in(read_to_end(slow, timeout=30)) if e.id]
    finally:
        slow.close()
        fast.stop()
    assert fast.positions() == expected
    assert fast.connections == 1
    assert received == expected[: len(received)]
    assert len(received) < EVENTS
    resumed = StreamRecorder(
        f"{server.base_url}/api/stream",
        name="resumed",
        last_event_id=str(received[-1] if received else start),
    ).start()
    try:
        assert resumed.wait_for(EVENTS - len(received), timeout=60)
    finally:
        resumed.stop()
    assert received + resumed.positions() == expected
