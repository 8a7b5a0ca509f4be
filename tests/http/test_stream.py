"""SSE streams against a real server on both backends: history then live, exact resumption."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
import httpx_sse
from http_harness import Server
from support.sse import StreamRecorder

from tasktrail.engine.log import read_log


def read_events(client: httpx.Client, url: str, **headers: str) -> list[httpx_sse.ServerSentEvent]:
    with httpx_sse.connect_sse(client, "GET", url, headers=headers) as source:
        source.response.raise_for_status()
        return list(source.iter_sse())


def log_positions(server: Server) -> list[int]:
    positions: list[int] = []
    after = 0
    while batch := read_log(server.writer.store, after, 1000):
        positions += [e.position for e in batch]
        after = batch[-1].position
    return positions


def test_a_task_stream_sends_history_and_ends_after_the_terminal_event(
    api: httpx.Client, server: Server
) -> None:
    task = server.writer.finished_run(steps=2)
    events = [e for e in read_events(api, f"/api/tasks/{task.id}/stream") if e.event != "message"]
    assert [e.event for e in events][-1] == "task.completed"
    assert len(events) == task.version
    data = events[-1].json()
    assert data["task_id"] == str(task.id)
    assert data["task"]["status"] == "COMPLETED"
    assert int(events[-1].id) == data["position"]


def test_a_task_stream_follows_a_run_live(api: httpx.Client, server: Server) -> None:
    writer = server.writer
    task = writer.submit()
    received: list[Any] = []

    def follow() -> None:
        received.extend(read_events(api, f"/api/tasks/{task.id}/stream"))

    reader = threading.Thread(target=follow)
    reader.start()
    writer.start(task)
    for step in range(1, 6):
        writer.progress(task, step, 5)
    writer.complete(task)
    reader.join(timeout=20)
    assert not reader.is_alive()
    typed = [e for e in received if e.event.startswith("task.")]
    assert [e.json()["version"] for e in typed] == list(range(1, task.version + 1))
    assert typed[-1].json()["task"]["progress"]["percent"] == 100


def test_a_finished_task_stream_resumed_after_its_end_is_204(
    api: httpx.Client, server: Server
) -> None:
    task = server.writer.finished_run(steps=1)
    last = read_events(api, f"/api/tasks/{task.id}/stream")[-1].id
    response = api.get(f"/api/tasks/{task.id}/stream", headers={"Last-Event-ID": last})
    assert response.status_code == 204


def test_resuming_a_task_stream_skips_what_was_sent(api: httpx.Client, server: Server) -> None:
    task = server.writer.finished_run(steps=3)
    events = read_events(api, f"/api/tasks/{task.id}/stream")
    middle = events[2].id
    resumed = read_events(api, f"/api/tasks/{task.id}/stream", **{"Last-Event-ID": middle})
    assert [e.id for e in resumed if e.id] == [e.id for e in events[3:] if e.id]


def test_a_garbled_last_event_id_is_a_bad_request(api: httpx.Client) -> None:
    for value in ("abc", "-1", "1.5", "9" * 40):
        response = api.get("/api/stream", headers={"Last-Event-ID": value})
        assert response.status_code == 400, value
        assert response.headers["content-type"].startswith("application/problem+json")
    assert api.get("/api/stream", params={"after": "x"}).status_code == 400


def test_the_first_message_sets_retry_and_headers_disable_buffering(server: Server) -> None:
    with (
        server.client() as client,
        client.stream("GET", "/api/stream", params={"after": 0}) as response,
    ):
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-cache"
        assert "content-encoding" not in response.headers
        lines = response.iter_lines()
        first = next(lines)
        while first.startswith(":"):
            first = next(lines)
        assert first.startswith("retry:")


def test_clients_dropping_and_resuming_receive_every_event_once_in_order(
    server: Server,
) -> None:
    """50 clients reconnect at random points with Last-Event-ID while tasks run; the ring
    holds only 8 events, so most resumptions catch up from the database."""
    start = max(log_positions(server), default=0)
    recorders = [
        StreamRecorder(f"{server.base_url}/api/stream?after={start}", name=f"c{i}").start()
        for i in range(50)
    ]
    rng = random.Random(7)
    writer = server.writer
    for _ in range(20):
        task = writer.start(writer.submit())
        for step in range(1, 4):
            writer.progress(task, step, 3)
        writer.complete(task)
        for recorder in rng.sample(recorders, 5):
            response = recorder._response
            if response is not None:
                response.close()  # drop the connection mid-stream
    expected = [p for p in log_positions(server) if p > start]
    try:
        for recorder in recorders:
            assert recorder.wait_for(len(expected), timeout=60), recorder.name
    finally:
        for recorder in recorders:
            recorder.stop(timeout=0)  # ask all to stop first, then wait for each
        for recorder in recorders:
            recorder.stop()
    reconnected = sum(r.connections > 1 for r in recorders)
    assert reconnected > 0
    for recorder in recorders:
        assert recorder.positions()[: len(expected)] == expected, recorder.name
