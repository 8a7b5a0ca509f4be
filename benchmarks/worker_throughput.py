"""Worker throughput and latency through the whole engine, beside the raw commit rate.

    .venv/bin/python benchmarks/worker_throughput.py --tasks 1000 --concurrency 1 8 32 \
        --repeat 3 --backend both

Per backend, each figure on a fresh database and a median of ``--repeat`` runs:

- ``raw_commits_per_s``: single-row INSERT + COMMIT into a scratch table (the physical limit
  for one event per transaction; see append_rate.py);
- ``noop``: ``--tasks`` `tasktrail.sleep` tasks of 0 s submitted by ``--clients`` threads,
  timed from the first submission until the last ``task.completed`` reached the process's
  outbox follower (submit -> Started -> Completed), for each ``--concurrency`` (worker
  threads);
- ``progress``: the same with tasks that report progress 20 times (at the default coalescing
  interval), giving tasks/s and progress events recorded/s, with 8 worker threads and with
  ``--concurrency``'s last value;
- with both: what the group-commit writer did: records (one worker's events of one task) per
  transaction, and the mean, p99 and longest wait of a record for its batch to start (what
  batching adds to an event's latency), and the p99 and longest of the part of that wait
  after the writer was free (``handover``: the rest is the transaction in flight, which a
  record written on its own would wait for too, on the log's lock);
- ``latency``: one task every 1/``--rate`` s for ``--seconds`` s: submit -> ``task.started``
  seen by the follower, p50/p99; and cancel -> Cancelled of running tasks;
- with ``--worker-processes K``: ``split``, the no-op and the progress figures again with the
  workers in K `tasktrail worker` processes of ``--concurrency``'s last value threads each,
  this process keeping the clients and its follower: layout ``serve`` as
  ``serve --worker-processes K`` runs them (this process projects; both backends), and on
  PostgreSQL layout ``scale-out`` (plain worker processes, one of them holds the projector
  lock; this process's projector stands by).

Everything else runs in one process (the embedded layout: follower, projector, worker pool and
the clients). Prints one JSON line per figure; saves them under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

from _common import RESULTS, percentile
from append_rate import raw_rate
from rebuild_rate import database

from tasktrail import bootstrap, schema
from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.leases import live_workers
from tasktrail.engine.log import LogEvent
from tasktrail.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import start_worker, wait_until

PROGRESS_STEPS = 20
SCALE_OUT = "scale-out"  # split layouts: tasktrail worker processes that project
SERVE = "serve"  # serve --worker-processes: children that leave projecting to their parent
WAIT_SECONDS = 300.0


class Arrivals:
    """A follower consumer that notes when each task's events reach this process."""

    name = "benchmark-arrivals"

    def __init__(self, head: Callable[[], int]) -> None:
        self._head = head
        self.seen: dict[str, dict[UUID, float]] = {}
        self.counts: dict[str, int] = {}
        self._changed = threading.Condition()

    def position(self) -> int:
        return self._head()

    def handle(self, batch: Sequence[LogEvent]) -> None:
        moment = time.perf_counter()
        with self._changed:
            for event in batch:
                self.seen.setdefault(event.topic, {}).setdefault(event.originator_id, moment)
                self.counts[event.topic] = self.counts.get(event.topic, 0) + 1
            self._changed.notify_all()

    def count(self, topic: str) -> int:
        return self.counts.get(topic, 0)

    def wait(self, topic: str, ids: Sequence[UUID]) -> float:
        """When the last of ``ids`` had a ``topic`` event."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self._changed:
            while True:
                seen = self.seen.get(topic, {})
                # Counted first: a scan of every id at each batch took CPU from the engine.
                if len(seen) >= len(ids) and all(task_id in seen for task_id in ids):
                    return max(seen[task_id] for task_id in ids)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic} of {len(ids)} tasks not seen in time")
                self._changed.wait(0.05)


class Engine:
    """One process on a fresh database: the runtime with ``concurrency`` worker threads."""

    def __init__(self, url: str, concurrency: int) -> None:
        settings = Settings(database_url=url, poll_seconds=0.05, seed_examples=False)
        self.container = bootstrap.build(settings)
        self.runtime = bootstrap.build_runtime(self.container, workers=concurrency)
        self.arrivals = Arrivals(self.container.store.head)
        self.runtime.follower.add_consumer(self.arrivals)

    def __enter__(self) -> Engine:
        self.runtime.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.runtime.stop()
        self.container.close()

    def submit(self, parameters: dict[str, Any]) -> UUID:
        return self.container.service.start_execution(SLEEP_KIND, parameters).id


def submit_from_clients(
    engine: Engine, tasks: int, clients: int, params: dict[str, Any]
) -> list[UUID]:
    ids: list[UUID] = []
    lock = threading.Lock()

    def client(share: int) -> None:
        mine = [engine.submit(params) for _ in range(share)]
        with lock:
            ids.extend(mine)

    shares = [tasks // clients + (1 if n < tasks % clients else 0) for n in range(clients)]
    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def lifecycle(url: str, tasks: int, concurrency: int, clients: int, steps: int) -> dict[str, float]:
    """Tasks/s from the first submission to the last completion seen."""
    params = {"seconds": 0, "steps": steps}
    with Engine(url, concurrency) as engine:
        started = time.perf_counter()
        ids = submit_from_clients(engine, tasks, clients, params)
        submitted = time.perf_counter()
        finished = engine.arrivals.wait("task.completed", ids)
        progress_events = engine.arrivals.count("task.progress_updated")
        writer = engine.container.parts["writer"]
    seconds = finished - started
    return {
        "submit_per_s": tasks / (submitted - started),
        "tasks_per_s": tasks / seconds,
        "progress_events_per_s": progress_events / seconds,
        "progress_events_per_task": progress_events / tasks,
        "writer_records_per_batch": writer.saved / max(1, writer.batches),
        "writer_mean_wait_ms": 1000 * writer.waited_seconds / max(1, writer.waited),
        "writer_p99_wait_ms": 1000 * writer.wait_percentile(0.99),
        "writer_max_wait_ms": 1000 * writer.max_wait_seconds,
        "writer_p99_handover_ms": 1000 * writer.handover_percentile(0.99),
        "writer_max_handover_ms": 1000 * writer.max_handover_seconds,
    }


def split(
    url: str,
    tasks: int,
    processes: int,
    concurrency: int,
    clients: int,
    steps: int = 0,
    layout: str = SCALE_OUT,
) -> dict[str, float]:
    """``lifecycle``'s figure (no-op, or ``steps`` progress reports) with the workers in
    ``processes`` other processes, started (and registered) first. ``SCALE_OUT``: plain
    ``tasktrail worker`` processes, one of which holds the projector lock; ``SERVE``: as
    ``serve --worker-processes`` starts them (no projector: this process projects)."""
    schema.upgrade(Settings(database_url=url))
    supervisor = os.getpid() if layout == SERVE else None
    with tempfile.TemporaryDirectory() as logs:
        workers = [
            start_worker(
                f"worker{n}",
                url,
                Path(logs),
                concurrency=concurrency,
                settings={"poll_seconds": 0.05},
                supervised_by=supervisor,
            )
            for n in range(processes)
        ]
        try:
            with Engine(url, 0) as engine:
                wait_until(
                    lambda: len(live_workers(engine.container.sql)) >= processes, 30, "workers"
                )
                started = time.perf_counter()
                params = {"seconds": 0, "steps": steps}
                ids = submit_from_clients(engine, tasks, clients, params)
                submitted = time.perf_counter()
                finished = engine.arrivals.wait("task.completed", ids)
                progress_events = engine.arrivals.count("task.progress_updated")
        finally:
            for worker in workers:
                worker.stop(timeout=30)
        # The workers' writers (Started, progress, terminal events) log what they did on stop.
        logged = [writer_waits_ms(worker.log_path) for worker in workers]
    own = engine.container.parts["writer"]
    own_waits = tuple(
        1000 * seconds
        for seconds in (
            own.wait_percentile(0.99),
            own.max_wait_seconds,
            own.handover_percentile(0.99),
            own.max_handover_seconds,
        )
    )
    # Each column's worst of this process's writer and the workers'.
    worst = [max(column) for column in zip(own_waits, *logged, strict=True)]
    return {
        "submit_per_s": tasks / (submitted - started),
        "tasks_per_s": tasks / (finished - started),
        "progress_events_per_s": progress_events / (finished - started),
        **dict(zip(WAIT_KEYS, worst, strict=True)),
    }


def writer_waits_ms(log_path: Path) -> tuple[float, float, float, float]:
    """The p99 and longest batch waits, and of their handover part, that a stopped process's
    group-commit writer logged."""
    pattern = (
        r"group-commit writer stopped: .*p99 ([0-9.]+) ms, longest ([0-9.]+) ms; "
        r"of it after the writer was free: p99 ([0-9.]+) ms, longest ([0-9.]+) ms"
    )
    found = re.findall(pattern, log_path.read_text())
    if not found:
        raise RuntimeError(f"no group-commit writer summary in {log_path}")
    p99, longest, handover_p99, handover_longest = (float(f) for f in found[-1])
    return p99, longest, handover_p99, handover_longest


def longest(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The longest waits of all runs (not their median), as the figures report them."""
    keys = ("writer_max_wait_ms", "writer_max_handover_ms")
    return {key: round(max(run[key] for run in runs), 1) for key in keys}


WAIT_KEYS = (
    "writer_p99_wait_ms",
    "writer_max_wait_ms",
    "writer_p99_handover_ms",
    "writer_max_handover_ms",
)


def latency(url: str, rate: float, seconds: float) -> dict[str, Any]:
    """Submit -> Started at a steady ``rate``, and cancel -> Cancelled of running tasks."""
    with Engine(url, 8) as engine:
        submitted: dict[UUID, float] = {}
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for _ in range(int(rate * seconds)):
            time.sleep(max(0.0, next_at - time.perf_counter()))
            moment = time.perf_counter()
            submitted[engine.submit({"seconds": 0})] = moment
            next_at += interval
        engine.arrivals.wait("task.started", list(submitted))
        seen = engine.arrivals.seen["task.started"]
        to_start = [seen[task_id] - moment for task_id, moment in submitted.items()]
        to_cancel = []
        for _ in range(5):
            task_id = engine.submit({"seconds": 30, "steps": 300})
            engine.arrivals.wait("task.started", [task_id])
            moment = time.perf_counter()
            engine.container.service.cancel_task(task_id)
            to_cancel.append(engine.arrivals.wait("task.cancelled", [task_id]) - moment)
    return {
        "rate_per_s": rate,
        "samples": len(to_start),
        "submit_to_started_ms": {
            "p50": round(1000 * statistics.median(to_start), 1),
            "p99": round(1000 * percentile(to_start, 0.99), 1),
        },
        "cancel_to_cancelled_ms": {
            "p50": round(1000 * statistics.median(to_cancel), 1),
            "max": round(1000 * max(to_cancel), 1),
        },
    }


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 1) for key in runs[0]}


def fresh(backend: str, measure: Callable[[str], Any]) -> Any:
    with database(backend) as url:
        return measure(url)


def raw(url: str, events: int) -> float:
    settings = Settings(database_url=url)
    schema.upgrade(settings)
    return raw_rate(settings, events)


def measure_backend(backend: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []

    def emit(kind: str, **values: Any) -> None:
        figures.append({"backend": backend, "figure": kind, **values})
        print(json.dumps(figures[-1]), flush=True)

    repeat = range(args.repeat)
    raw_runs = [fresh(backend, lambda url: raw(url, 2000)) for _ in repeat]
    emit("raw_commits", raw_commits_per_s=round(statistics.median(raw_runs), 1))
    for concurrency in args.concurrency:
        runs = [
            fresh(
                backend,
                partial(
                    lifecycle,
                    tasks=args.tasks,
                    concurrency=concurrency,
                    clients=args.clients,
                    steps=0,
                ),
            )
            for _ in repeat
        ]
        noop = medians(runs) | longest(runs)
        del noop["progress_events_per_s"], noop["progress_events_per_task"]
        emit("noop", tasks=args.tasks, concurrency=concurrency, clients=args.clients, **noop)
    for concurrency in sorted({8, args.concurrency[-1]}):
        runs = [
            fresh(
                backend,
                partial(
                    lifecycle,
                    tasks=args.tasks,
                    concurrency=concurrency,
                    clients=args.clients,
                    steps=PROGRESS_STEPS,
                ),
            )
            for _ in repeat
        ]
        progress = medians(runs) | longest(runs)
        emit(
            "progress", tasks=args.tasks, concurrency=concurrency, clients=args.clients, **progress
        )
    emit("latency", **fresh(backend, lambda url: latency(url, args.rate, args.seconds)))
    # Scale-out workers each run a projector: on SQLite all would be active (no lock).
    layouts = [SERVE, SCALE_OUT] if backend == "postgres" else [SERVE]
    for layout in layouts if args.worker_processes else []:
        threads = args.concurrency[-1]
        for steps in (0, PROGRESS_STEPS):
            runs = [
                fresh(
                    backend,
                    partial(
                        split,
                        tasks=args.tasks,
                        processes=args.worker_processes,
                        concurrency=threads,
                        clients=args.clients,
                        steps=steps,
                        layout=layout,
                    ),
                )
                for _ in repeat
            ]
            emit(
                "split",
                layout=layout,
                tasks=args.tasks,
                worker_processes=args.worker_processes,
                concurrency=threads,
                clients=args.clients,
                progress_steps=steps,
                **medians(runs) | longest(runs),
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--clients", type=int, default=8, help="submitting threads")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0, help="tasks/s for the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--worker-processes", type=int, default=0, help="also run the workers in K processes"
    )
    parser.add_argument("--output", default=str(RESULTS / "worker_throughput.json"))
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [figure for backend in backends for figure in measure_backend(backend, args)]
    Path(args.output).parent.mkdir(exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
