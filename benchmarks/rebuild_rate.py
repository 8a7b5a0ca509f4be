"""Rebuild rate of the task view vs the raw rate of reading the same events from the log.

    .venv/bin/python benchmarks/rebuild_rate.py --events 100000 --backend both

Writes N events (tasks of ~10 events each, many aggregates per save), then times (1) reading
the whole log with ``read_log`` (select_notifications + decode) and (2) a blue/green rebuild
of the task view. Prints both rates and their ratio; saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import Iterator

import psycopg
from _common import save
from psycopg import sql as pgsql

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.log import read_log
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.rebuild import Rebuild
from tasktrail.projections.task_view import TaskViewProjection
from tasktrail.settings import Settings

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EVENTS_PER_TASK = 10  # created, started, 7 progress, completed
TASKS_PER_SAVE = 200


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    name = f"tasktrail_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )


def write_events(store: TaskStore, events: int) -> None:
    for start in range(0, events // EVENTS_PER_TASK, TASKS_PER_SAVE):
        tasks = [
            ExecutionTask.submit(uuid.uuid4(), "bench", {"strategy_id": "s", "n": start + i})
            for i in range(TASKS_PER_SAVE)
        ]
        for task in tasks:
            task.start("bench-worker")
            for step in range(1, 8):
                task.update_progress(step, 7, "filtering", f"step {step}")
            task.complete({"matched": 1, "scanned": 7, "columns": [], "rows": []})
        store.save(*tasks)


def raw_read(store: TaskStore, batch: int) -> int:
    after, count = 0, 0
    while events := read_log(store, after=after, limit=batch):
        after = events[-1].position
        count += len(events)
    return count


def measure(backend: str, events: int, batch: int) -> dict[str, object]:
    with database(backend) as url:
        settings = Settings(database_url=url, seed_examples=False)
        schema.upgrade(settings)
        store = TaskStore(settings)
        sql = create_sql_engine(settings)
        try:
            began = time.perf_counter()
            write_events(store, events)
            write_seconds = time.perf_counter() - began
            began = time.perf_counter()
            read = raw_read(store, batch)
            read_seconds = time.perf_counter() - began
            report = Rebuild(sql, store, TaskViewProjection(), batch_size=batch).blue_green()
        finally:
            sql.dispose()
            store.close()
    raw_rate = read / read_seconds
    return {
        "backend": backend,
        "events": read,
        "batch_size": batch,
        "write_seconds": round(write_seconds, 2),
        "raw_read_seconds": round(read_seconds, 2),
        "raw_read_events_per_second": round(raw_rate),
        "rebuild_seconds": round(report.seconds, 2),
        "rebuild_events_per_second": round(report.events_per_second),
        "ratio": round(report.events_per_second / raw_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [measure(b, args.events, args.batch_size) for b in backends]
    for result in results:
        print(json.dumps(result))
    out = save(f"rebuild_rate_{args.events}.json", results)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
