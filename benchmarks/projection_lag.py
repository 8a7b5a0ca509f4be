"""Live lag of the task view: from an event's commit to its row being committed in the view.

    .venv/bin/python benchmarks/projection_lag.py --rate 100 --seconds 10 --backend both

A writer saves one new task per tick at ``--rate`` events/s; the follower and projector run in
the same process (woken by the save listener, with LISTEN/NOTIFY and polling as backup).
Prints p50/p99/max in milliseconds; saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Sequence

from _common import percentile, save
from rebuild_rate import database

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.log import LogEvent
from tasktrail.engine.outbox import Follower
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector
from tasktrail.projections.strategy_view import StrategyViewProjection
from tasktrail.projections.task_view import TaskViewProjection
from tasktrail.settings import Settings


class TimedProjector(Projector):
    """The projector, noting when each event's batch committed."""

    applied: dict[uuid.UUID, float]

    def handle(self, batch: Sequence[LogEvent]) -> int:
        position = super().handle(batch)
        now = time.perf_counter()
        for event in batch:
            self.applied.setdefault(event.originator_id, now)
        return position


def measure(backend: str, rate: float, seconds: float) -> dict[str, object]:
    with database(backend) as url:
        settings = Settings(database_url=url, seed_examples=False, poll_seconds=0.1)
        schema.upgrade(settings)
        store = TaskStore(settings)
        sql = create_sql_engine(settings)
        projector = TimedProjector(sql, [TaskViewProjection(), StrategyViewProjection()])
        projector.applied = {}
        follower = Follower(store, settings)
        follower.add_consumer(projector)
        follower.start()
        committed: dict[uuid.UUID, float] = {}
        lock = threading.Lock()
        try:
            deadline = time.perf_counter() + seconds
            tick = 1.0 / rate
            next_at = time.perf_counter()
            while next_at < deadline:
                task = ExecutionTask.submit(uuid.uuid4(), "bench", {})
                store.save(task)
                with lock:
                    committed[task.id] = time.perf_counter()
                next_at += tick
                time.sleep(max(0.0, next_at - time.perf_counter()))
            follower.wait_for_head(timeout=30)
        finally:
            follower.stop()
            sql.dispose()
            store.close()
    lags = [
        max(0.0, projector.applied[i] - committed[i]) * 1000
        for i in committed
        if i in projector.applied
    ]
    return {
        "backend": backend,
        "rate": rate,
        "events": len(committed),
        "p50_ms": round(statistics.median(lags), 2),
        "p99_ms": round(percentile(lags, 0.99), 2),
        "max_ms": round(max(lags), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [measure(b, args.rate, args.seconds) for b in backends]
    for result in results:
        print(json.dumps(result))
    out = save("projection_lag.json", results)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
