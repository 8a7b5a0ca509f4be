"""Worker throughput: no-op tasks/s through the whole engine, and submit -> Started latency.

    .venv/bin/python benchmarks/worker_throughput.py --tasks 300 --concurrency 1 8 --backend both

Each run: a fresh database, one process with the follower, the projector and a worker pool of
``--concurrency`` threads; ``--tasks`` `tasktrail.sleep` tasks of 0 s are submitted at once and
timed until the last one is COMPLETED. Then single tasks are submitted one at a time to time
submit -> Started and cancel -> Cancelled. Prints the figures; saves JSON under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from rebuild_rate import database

from tasktrail import bootstrap
from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

RESULTS = Path(__file__).with_name("results")


def wait_status(container: bootstrap.Container, task_id: Any, done: set[TaskStatus]) -> float:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if container.service.get_task(task_id).status in done:
            return time.perf_counter()
        time.sleep(0.002)
    raise TimeoutError(f"task {task_id} did not reach {done}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, tasks: int, concurrency: int, samples: int) -> dict[str, Any]:
    settings = Settings(database_url=url, poll_seconds=0.05, seed_examples=False)
    container = bootstrap.build(settings)
    runtime = bootstrap.build_runtime(container, workers=concurrency)
    runtime.start()
    try:
        started = time.perf_counter()
        ids = [
            container.service.start_execution(SLEEP_KIND, {"seconds": 0}).id for _ in range(tasks)
        ]
        submitted = time.perf_counter()
        for task_id in ids:
            wait_status(container, task_id, {TaskStatus.COMPLETED})
        finished = time.perf_counter()
        to_start = []
        for _ in range(samples):
            t0 = time.perf_counter()
            task = container.service.start_execution(SLEEP_KIND, {"seconds": 0})
            to_start.append(
                wait_status(container, task.id, {TaskStatus.RUNNING, TaskStatus.COMPLETED}) - t0
            )
        to_cancel = []
        for _ in range(max(3, samples // 5)):
            task = container.service.start_execution(SLEEP_KIND, {"seconds": 30, "steps": 300})
            wait_status(container, task.id, {TaskStatus.RUNNING})
            t0 = time.perf_counter()
            container.service.cancel_task(task.id)
            to_cancel.append(wait_status(container, task.id, {TaskStatus.CANCELLED}) - t0)
    finally:
        runtime.stop()
        container.close()
    return {
        "tasks": tasks,
        "concurrency": concurrency,
        "submit_per_s": round(tasks / (submitted - started), 1),
        "tasks_per_s": round(tasks / (finished - started), 1),
        "submit_to_started_ms": {
            "p50": round(1000 * statistics.median(to_start), 1),
            "p99": round(1000 * percentile(to_start, 0.99), 1),
        },
        "cancel_to_cancelled_ms": {
            "p50": round(1000 * statistics.median(to_cancel), 1),
            "max": round(1000 * max(to_cancel), 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        for concurrency in args.concurrency:
            with database(backend) as url:
                figures = {
                    "backend": backend,
                    **measure(url, args.tasks, concurrency, args.samples),
                }
            print(json.dumps(figures))
            results.append(figures)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "worker_throughput.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
