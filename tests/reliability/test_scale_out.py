"""500 runs through nginx on two nodes and three workers: each completes exactly once, and
SSE clients pinned to different nodes each see every event exactly once, in order."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from reliability_harness import Site
from support.processes import upstreams_of, wait_until
from support.sse import StreamRecorder

RUNS = 500
SUBMISSION = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}


def submit(client: httpx.Client, url: str) -> str:
    for _ in range(50):
        answer = client.post(f"{url}/api/tasks", json=SUBMISSION)
        if answer.status_code == 202:
            task_id: str = answer.json()["task_id"]
            return task_id
        assert answer.status_code >= 500, answer.text
        time.sleep(0.2)
    raise AssertionError("submission kept failing")


def events_of(client: httpx.Client, url: str, task_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"{url}/api/tasks/{task_id}/events")
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def test_500_runs_complete_once_and_every_stream_sees_every_event_once(site: Site) -> None:
    with httpx.Client(timeout=30.0) as client:
        head = client.get(f"{site.url}/api/tasks").json()["position"]
        clients = [
            StreamRecorder(f"{site.url}/api/stream?after={head}", name=f"sse{i}").start()
            for i in range(4)
        ]
        for recorder in clients:
            assert recorder.connected.wait(10), recorder.errors
        started = time.monotonic()
        first_id = submit(client, site.url)
        wait_until(lambda: all(r.snapshot() for r in clients), 20, "the first event")
        first_latency = max(r.snapshot()[0].received_at for r in clients) - started
        with ThreadPoolExecutor(8) as pool:

            def one(_: int) -> str:
                with httpx.Client(timeout=30.0) as own:
                    return submit(own, site.url)

            task_ids = [first_id, *pool.map(one, range(RUNS - 1))]
        submitted = time.monotonic() - started

        def all_done() -> bool:
            counts = client.get(f"{site.url}/api/tasks").json()["counts"]
            return int(counts.get("COMPLETED", 0)) >= RUNS

        wait_until(all_done, 180, f"{RUNS} runs to complete", interval=0.5)
        finished = time.monotonic() - started
        per_task = {t: events_of(client, site.url, t) for t in task_ids}
    expected = sorted(e["position"] for events in per_task.values() for e in events)
    wait_until(
        lambda: all(len(r.positions()) >= len(expected) for r in clients), 60, "streams to catch up"
    )
    time.sleep(0.5)
    for recorder in clients:
        recorder.stop()
    served = upstreams_of(site.nginx_prefix, "/api/stream")

    doubled = []
    for task_id, events in per_task.items():
        types = [e["type"] for e in events]
        started_n = sum(1 for t in types if t.endswith("started"))
        completed_n = sum(1 for t in types if t.endswith("completed"))
        if (started_n, completed_n) != (1, 1):
            doubled.append((task_id, types))
    print(
        f"\n{RUNS} runs: submitted in {submitted:.1f}s, all completed after {finished:.1f}s "
        f"({RUNS / finished:.0f} runs/s); {len(expected)} events; first event through nginx "
        f"after {first_latency * 1000:.0f} ms; streams served by {served}; "
        f"per client {[len(r.positions()) for r in clients]} events, "
        f"reconnects {[r.connections for r in clients]}"
    )
    assert doubled == [], f"not started+completed exactly once: {doubled[:5]}"
    assert len(set(served)) == 2, f"the streams were not spread over both nodes: {served}"
    ours = set(expected)
    for recorder in clients:
        positions = [p for p in recorder.positions() if p in ours]
        assert positions == expected, (
            f"{recorder.name}: {len(positions)} of {len(expected)}, "
            f"missing {sorted(ours - set(positions))[:5]}"
        )
        every = recorder.positions()
        assert every == sorted(set(every)), f"{recorder.name}: out of order or doubled"
