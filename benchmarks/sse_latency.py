"""SSE delivery latency: from a task's submission (just before the POST is sent) to its
`task.created` event arriving on `/api/stream`, through a real `tasktrail serve` subprocess.
The figure includes the POST itself (validation, the append, the commit). ``event_*``: the
same deliveries timed from the event's own timestamp (set by the server when the task is
decided, just before its group commit; same host clock), so the HTTP request and the
client's side of it are left out: the commit -> client latency, the commit included.

    .venv/bin/python benchmarks/sse_latency.py --rate 50 --seconds 10 --backend both

The server runs without workers, so the only events are the submissions'. Prints p50/p99/max
in milliseconds; saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _common import percentile, save
from httpx_sse import connect_sse
from rebuild_rate import database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TASKTRAIL_SEED_EXAMPLES": "false", "TASKTRAIL_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "tasktrail", "--database-url", url, "serve"]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*command, "--port", str(port), "--no-workers"], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def measure(url: str, rate: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        server = start_server(url, port, Path(directory) / "serve.log")
        base = f"http://127.0.0.1:{port}"
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        from_event: list[float] = []
        ready = threading.Event()
        total = int(rate * seconds)

        def listen() -> None:
            with (
                httpx.Client(timeout=None) as client,
                connect_sse(client, "GET", f"{base}/api/stream") as source,
            ):
                ready.set()
                for event in source.iter_sse():
                    if event.event == "task.created":
                        data = json.loads(event.data)
                        received[data["task_id"]] = time.perf_counter()
                        stamped = datetime.fromisoformat(data["timestamp"]).timestamp()
                        from_event.append(time.time() - stamped)
                        if len(received) >= total:
                            return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        ready.wait(10)
        try:
            with httpx.Client(base_url=base, timeout=10) as client:
                start = time.perf_counter()
                for i in range(total):
                    time.sleep(max(0.0, i / rate - (time.perf_counter() - start)))
                    body = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}
                    before = time.perf_counter()
                    response = client.post("/api/tasks", json=body)
                    sent[response.json()["task_id"]] = before
            listener.join(timeout=30)
        finally:
            server.terminate()
            server.wait(timeout=30)
    latencies = sorted(1000 * (received[t] - sent[t]) for t in sent if t in received)
    event_ms = sorted(1000 * seconds for seconds in from_event)
    return {
        "events": total,
        "delivered": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(latencies[-1], 2),
        "event_p50_ms": round(statistics.median(event_ms), 2),
        "event_p99_ms": round(percentile(event_ms, 0.99), 2),
        "event_max_ms": round(event_ms[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        with database(backend) as url:
            figures = {
                "backend": backend,
                "rate": args.rate,
                **measure(url, args.rate, args.seconds),
            }
        print(json.dumps(figures))
        results.append(figures)
    save("sse_latency.json", results)


if __name__ == "__main__":
    main()
