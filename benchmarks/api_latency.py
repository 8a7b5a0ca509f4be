"""REST latency through a real `tasktrail serve`: `POST /api/strategies/{id}/execute` p50/p99,
and `GET /api/tasks` p50/p99 (first page, a filtered first page, a deep keyset page) with
100,000 tasks in the task view.

    .venv/bin/python benchmarks/api_latency.py --tasks 100000 --backend both

The tasks are written straight into the event store in batches (created, then completed or
cancelled, so no projection keeps them as work), and the task view is rebuilt from the log
before the server starts (the same rebuild as `tasktrail projections rebuild`); the server
then only catches its other projections up. It runs without workers, so nothing but the
measured requests uses its CPU. One client, sequential requests, keep-alive. Saves JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from _common import save
from rebuild_rate import database

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.rebuild import Rebuild
from tasktrail.projections.task_view import TaskViewProjection
from tasktrail.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import Process, start_serve

TASKS_PER_SAVE = 500
STRATEGY = {
    "name": "bench",
    "conditions": [{"metric": "close", "operator": ">", "value": 0}],
}


def seed(url: str, tasks: int) -> dict[str, float]:
    """``tasks`` finished tasks in the log, then the task view rebuilt from it."""
    settings = Settings(database_url=url, seed_examples=False)
    schema.upgrade(settings)
    store = TaskStore(settings)
    sql = create_sql_engine(settings)
    try:
        began = time.perf_counter()
        for start in range(0, tasks, TASKS_PER_SAVE):
            batch = [finished(start + i) for i in range(min(TASKS_PER_SAVE, tasks - start))]
            store.save(*batch)
        written = time.perf_counter() - began
        report = Rebuild(sql, store, TaskViewProjection()).blue_green()
    finally:
        sql.dispose()
        store.close()
    return {"write_seconds": round(written, 1), "rebuild_seconds": round(report.seconds, 1)}


def finished(n: int) -> ExecutionTask:
    task = ExecutionTask.submit(uuid.uuid4(), "bench.task", {"n": n})
    if n % 4 == 0:
        task.cancel("bench")
        return task
    task.start("bench-worker")
    task.complete({"matched": 1, "scanned": 1, "columns": [], "rows": []})
    return task


def wait_for_projections(client: httpx.Client, timeout: float = 600) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        projections = client.get("/api/admin/projections").json()["projections"]
        if projections and all(p["lag"] == 0 for p in projections):
            return time.monotonic() - began
        time.sleep(0.5)
    raise RuntimeError(f"projections did not catch up in {timeout:.0f}s: {projections}")


def timed(client: httpx.Client, method: str, url: str, count: int, **kwargs: Any) -> list[float]:
    """``count`` sequential requests; their latencies in ms (each must answer 2xx)."""
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.request(method, url, **kwargs)
        latencies.append(1000 * (time.perf_counter() - began))
        response.raise_for_status()
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def deep_cursor(client: httpx.Client, depth: int) -> tuple[str | None, int]:
    """The next_cursor after walking ``depth`` tasks with 500-row pages, and how deep it is
    (None, the first page, when ``depth`` is 0)."""
    cursor: str | None = None
    walked = 0
    while walked < depth:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/tasks", params=params).json()
        walked += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            raise RuntimeError(f"the list ended after {walked} tasks")
    return cursor, walked


def measure(server: Process, requests: int, depth: int) -> dict[str, Any]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as client:
        catch_up = wait_for_projections(client)
        strategy = client.post("/api/strategies", json=STRATEGY).json()["id"]
        timed(client, "POST", f"/api/strategies/{strategy}/execute", 20)  # warm up
        execute = timed(client, "POST", f"/api/strategies/{strategy}/execute", requests)
        first = timed(client, "GET", "/api/tasks", requests, params={"limit": 50})
        filtered = timed(
            client, "GET", "/api/tasks", requests, params={"limit": 50, "status": "CANCELLED"}
        )
        cursor, walked = deep_cursor(client, depth)
        deep = timed(client, "GET", "/api/tasks", requests, params={"limit": 50, "cursor": cursor})
        total = sum(client.get("/api/tasks").json()["counts"].values())
    return {
        "tasks_in_view": total,
        "server_catch_up_seconds": round(catch_up, 1),
        "execute": summary(execute),
        "list_first_page": summary(first),
        "list_first_page_status_filter": summary(filtered),
        "list_deep_page": {"depth": walked, **summary(deep)},
    }


def run(backend: str, tasks: int, requests: int, depth: int) -> dict[str, Any]:
    with database(backend) as url, tempfile.TemporaryDirectory() as logs:
        seeding = seed(url, tasks)
        server = start_serve("serve", url, Path(logs), settings={"log_level": "warning"})
        try:
            return {
                "backend": backend,
                "tasks": tasks,
                **seeding,
                **measure(server, requests, depth),
            }
        finally:
            server.stop(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=500, help="per measured request kind")
    parser.add_argument("--depth", type=int, default=None, help="deep page offset (tasks/2)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    depth = args.depth if args.depth is not None else args.tasks // 2
    results = [run(b, args.tasks, args.requests, depth) for b in backends]
    for result in results:
        print(json.dumps(result))
    out = save("api_latency.json", results)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
