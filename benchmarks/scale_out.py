"""Scale-out on PostgreSQL: runs/s, events/s and submit -> Started latency as the number of
`tasktrail worker` processes K goes 1 -> 2 -> 4, beside the database's raw commit rate
measured in the same run.

    .venv/bin/python benchmarks/scale_out.py --runs 400 --workers 1 2 4 --repeat 3

Per K, on a fresh database: one `tasktrail serve --no-workers` node takes the submissions
(8 concurrent clients, as fast as it answers) and K worker processes with 4 threads each
run them (`tasktrail.sleep` with 0 s: the engine's own cost). Runs/s is from the first POST
to the last run's completion in the task view; latency is the view's submitted_at ->
started_at. The raw rate is single-row INSERT + COMMIT from one connection; the machine's
CPU use during the run shows whether cores or the database are the limit. Medians of
``--repeat`` runs; JSON saved to benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _common import percentile, save
from append_rate import raw_rate
from rebuild_rate import database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import Fleet, start_serve, start_worker, wait_until

from tasktrail.engine.store import EVENTS_TABLE
from tasktrail.settings import Settings

CLIENTS = 8
THREADS = 4
SUBMISSION = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}


def cpu_ticks() -> tuple[int, int]:
    """Busy and total jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def one_run(url: str, workers: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as directory:
        logs = Path(directory)
        fleet = Fleet(logs)
        try:
            node = fleet.add(start_serve("serve", url, logs))
            procs = [
                fleet.add(start_worker(f"w{i}", url, logs, concurrency=THREADS))
                for i in range(workers)
            ]
            wait_until(lambda: registered(url) >= len(procs), 60, "workers to register")
            base = f"http://127.0.0.1:{node.port}"
            busy_before, total_before = cpu_ticks()
            started = time.perf_counter()

            def share(n: int) -> None:
                with httpx.Client(base_url=base, timeout=30) as client:
                    for _ in range(n):
                        answer = client.post("/api/tasks", json=SUBMISSION)
                        assert answer.status_code == 202, answer.text

            with ThreadPoolExecutor(CLIENTS) as pool:
                list(pool.map(share, [runs // CLIENTS] * CLIENTS))
            submitted = time.perf_counter() - started
            total = runs // CLIENTS * CLIENTS
            wait_until(lambda: completed(url) >= total, 600, "runs to complete", interval=0.05)
            seconds = time.perf_counter() - started
            busy_after, total_after = cpu_ticks()
            latencies, events = view_figures(url)
        finally:
            fleet.stop_all()
    return {
        "runs_per_s": total / seconds,
        "submissions_per_s": total / submitted,
        "events_per_s": events / seconds,
        "start_latency_p50_ms": statistics.median(latencies) * 1000,
        "start_latency_p99_ms": percentile(latencies, 0.99) * 1000,
        # The whole machine's CPU (every core) busy during the run: near 1.0, the processes
        # compete for cores rather than for the database.
        "machine_cpu_busy": (busy_after - busy_before) / max(1, total_after - total_before),
    }


def registered(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute("SELECT count(*) FROM workers").fetchone()
    return int(row[0]) if row else 0


def completed(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM task_view WHERE status = 'COMPLETED'"
        ).fetchone()
    return int(row[0]) if row else 0


def view_figures(url: str) -> tuple[list[float], int]:
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT extract(epoch FROM started_at - submitted_at) FROM task_view"
        ).fetchall()
        events = connection.execute(f"SELECT max(notification_id) FROM {EVENTS_TABLE}").fetchone()
    return [float(r[0]) for r in rows], int(events[0]) if events and events[0] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for workers in args.workers:
        trials = []
        for _ in range(args.repeat):
            with database("postgres") as url:
                trials.append(one_run(url, workers, args.runs))
        with database("postgres") as url:
            raw = raw_rate(Settings(database_url=url), 2000)
        figures: dict[str, Any] = {
            "backend": "postgres",
            "workers": workers,
            "threads_per_worker": THREADS,
            "runs": args.runs,
            "raw_commits_per_s": raw,
            **{k: statistics.median(t[k] for t in trials) for k in trials[0]},
        }
        figures["runs_vs_raw"] = figures["runs_per_s"] / raw
        print(
            json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()})
        )
        results.append(figures)
    save("scale_out.json", results)


if __name__ == "__main__":
    main()
