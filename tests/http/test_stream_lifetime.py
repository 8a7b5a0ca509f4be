"""A stream ends at its maximum lifetime (``TASKTRAIL_SSE_MAX_CONNECTION_SECONDS``), idle or
busy, and a client that reconnects with Last-Event-ID, as EventSource does, loses nothing and
receives nothing twice."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import httpx
import pytest
from http_harness import Server, serve
from support.sse import StreamRecorder
from test_stream import log_positions

from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.leases import Lease
from tasktrail.settings import Settings

LIFETIME = 1.5


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(
        module_database_url, tmp_path_factory.mktemp("logs"), sse_max_connection_seconds=LIFETIME
    ) as running:
        yield running


@contextlib.contextmanager
def live_worker(server: Server, worker_id: str) -> Iterator[None]:
    """A heartbeating lease for the stand-in worker, so the server's reaper leaves its
    running tasks alone."""
    settings = Settings(database_url=server.database_url)
    sql = create_sql_engine(settings)
    lease = Lease(sql, settings, worker_id)
    lease.start()
    try:
        yield
    finally:
        lease.stop()
        sql.dispose()


def seconds_until_the_server_ends(client: httpx.Client, path: str) -> float:
    started = time.monotonic()
    with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        response.read()  # returns once the server ends the response
    return time.monotonic() - started


def test_an_idle_stream_ends_at_its_lifetime(server: Server) -> None:
    waiting = server.writer.submit()  # a task with no further events: its stream idles
    with httpx.Client(base_url=server.base_url, timeout=LIFETIME + 10) as client:
        for path in ("/api/stream", f"/api/tasks/{waiting.id}/stream"):
            elapsed = seconds_until_the_server_ends(client, path)
            assert LIFETIME <= elapsed < LIFETIME + 5, (path, elapsed)


def test_a_busy_stream_ends_at_its_lifetime_and_the_reconnected_client_loses_nothing(
    server: Server,
) -> None:
    with live_worker(server, "lifetime-worker"):
        busy_stream_across_lifetimes(server)


def busy_stream_across_lifetimes(server: Server) -> None:
    head = max(log_positions(server), default=0)
    recorder = StreamRecorder(f"{server.base_url}/api/stream?after={head}").start()
    task = server.writer.start(server.writer.submit(), "lifetime-worker")
    running = server.writer.start(server.writer.submit(), "lifetime-worker")
    task_recorder = StreamRecorder(f"{server.base_url}/api/tasks/{running.id}/stream").start()
    assert recorder.connected.wait(10)
    assert task_recorder.connected.wait(10)
    steps = 40

    for step in range(1, steps + 1):  # ~3 lifetimes of steady events
        server.writer.progress(task, step, steps)
        server.writer.progress(running, step, steps)
        time.sleep(3 * LIFETIME / steps)
    server.writer.complete(task)
    server.writer.complete(running)
    expected = [p for p in log_positions(server) if p > head]
    try:
        assert recorder.wait_for(len(expected), 15), (len(recorder.events), len(expected))
        assert task_recorder.wait_for(steps + 3, 15), (
            [e.event for e in task_recorder.snapshot()],
            task_recorder.positions(),
            task_recorder.errors,
        )
    finally:
        recorder.stop()
        task_recorder.stop()

    assert recorder.positions() == expected
    assert recorder.connections >= 3, "the server did not end the stream at its lifetime"
    task_events = [e.event for e in task_recorder.snapshot()]
    assert task_events[0] == "task.created"
    assert task_events[-1] == "task.completed"
    assert len(task_events) == steps + 3
    assert task_recorder.positions() == sorted(set(task_recorder.positions()))
    assert task_recorder.connections >= 3
