"""SSE delivery latency through nginx versus direct, side by side in one run.

    .venv/bin/python benchmarks/sse_nginx.py --rate 50 --seconds 10 --backend both

One `tasktrail serve --no-workers` node, the shipped nginx config in front of it (its own
prefix, a loopback port). Two clients follow `/api/stream` at once, one straight from the
node and one through nginx; submissions go straight to the node at ``--rate``. Latency is
from just before each POST to its `task.created` event arriving, for each client, so the
difference between the two columns is what nginx adds. Saves benchmarks/results/sse_nginx.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from _common import percentile, save
from httpx_sse import connect_sse
from rebuild_rate import database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import Fleet, start_nginx, start_serve


class Listener(threading.Thread):
    """Follows ``url`` and notes when each task's ``task.created`` event arrived."""

    def __init__(self, url: str, expected: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.expected = expected
        self.received: dict[str, float] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        with (
            httpx.Client(timeout=None) as client,
            connect_sse(client, "GET", self.url) as source,
        ):
            self.ready.set()
            for event in source.iter_sse():
                if event.event == "task.created":
                    self.received[json.loads(event.data)["task_id"]] = time.perf_counter()
                    if len(self.received) >= self.expected:
                        return


def measure(url: str, rate: float, seconds: float) -> dict[str, Any]:
    total = int(rate * seconds)
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        fleet = Fleet(base / "logs")
        try:
            node = fleet.add(start_serve("serve", url, base / "logs"))
            nginx = fleet.add(start_nginx(base / "nginx", [node.port or 0]))
            direct = f"http://127.0.0.1:{node.port}"
            listeners = {
                "direct": Listener(f"{direct}/api/stream", total),
                "nginx": Listener(f"http://127.0.0.1:{nginx.port}/api/stream", total),
            }
            for listener in listeners.values():
                listener.start()
                listener.ready.wait(10)
            sent: dict[str, float] = {}
            with httpx.Client(base_url=direct, timeout=10) as client:
                start = time.perf_counter()
                for i in range(total):
                    time.sleep(max(0.0, i / rate - (time.perf_counter() - start)))
                    body = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}
                    before = time.perf_counter()
                    sent[client.post("/api/tasks", json=body).json()["task_id"]] = before
            for listener in listeners.values():
                listener.join(timeout=30)
        finally:
            fleet.stop_all()
    figures: dict[str, Any] = {"events": total}
    for name, listener in listeners.items():
        latencies = [
            1000 * (listener.received[t] - sent[t]) for t in sent if t in listener.received
        ]
        figures[name] = {
            "delivered": len(latencies),
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies), 2),
        }
    figures["nginx_adds_p50_ms"] = round(
        figures["nginx"]["p50_ms"] - figures["direct"]["p50_ms"], 2
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        for trial in range(args.repeat):
            with database(backend) as url:
                figures = {"backend": backend, "rate": args.rate, "trial": trial + 1}
                figures.update(measure(url, args.rate, args.seconds))
            print(json.dumps(figures))
            results.append(figures)
    save("sse_nginx.json", results)


if __name__ == "__main__":
    main()
