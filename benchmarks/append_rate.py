"""Append rate: raw single-row commits vs one eventsourcing save per command vs group commit.

    .venv/bin/python benchmarks/append_rate.py --events 2000 --repeat 3 --backend both

Side by side on a fresh database per backend: (1) the raw rate of single-row INSERT + COMMIT
into a scratch table (the physical limit for one event per transaction); (2) one
``store.save`` per command (a new task, then progress updates on it); (3) the same commands
from 8 threads through the GroupCommitWriter. Medians of ``--repeat`` runs; JSON saved under
benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa
from _common import save
from rebuild_rate import database

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.group_commit import GroupCommitWriter
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.settings import Settings

THREADS = 8


def raw_rate(settings: Settings, events: int) -> float:
    engine = create_sql_engine(settings)
    with engine.begin() as c:
        c.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER, body TEXT)"))
    started = time.perf_counter()
    with engine.connect() as c:
        for i in range(events):
            c.execute(sa.text("INSERT INTO bench_raw VALUES (:i, :b)"), {"i": i, "b": "x" * 200})
            c.commit()
    seconds = time.perf_counter() - started
    engine.dispose()
    return events / seconds


def commands(task: ExecutionTask, per_task: int) -> list[Any]:
    return [lambda i=i: task.update_progress(i, per_task, "bench") for i in range(1, per_task)]


def one_save_rate(store: TaskStore, events: int, per_task: int = 10) -> float:
    started = time.perf_counter()
    done = 0
    while done < events:
        task = ExecutionTask.submit(uuid.uuid4(), "bench", {})
        store.save(task)
        task.start("bench")
        store.save(task)
        done += 2
        for command in commands(task, per_task):
            command()
            store.save(task)
            done += 1
    return done / (time.perf_counter() - started)


def group_commit_rate(store: TaskStore, events: int, per_task: int = 10) -> float:
    writer = GroupCommitWriter(store)
    writer.start()
    share = events // THREADS

    def client() -> None:
        done = 0
        while done < share:
            task = ExecutionTask.submit(uuid.uuid4(), "bench", {})
            task.start("bench")
            writer.save(task)
            done += 2
            for command in commands(task, per_task):
                command()
                writer.save(task)
                done += 1

    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    writer.stop()
    return share * THREADS / seconds


def measure(backend: str, events: int) -> dict[str, float]:
    with database(backend) as url:
        settings = Settings(database_url=url)
        schema.upgrade(settings)
        store = TaskStore(settings)
        try:
            return {
                "raw_commits_per_s": raw_rate(settings, events),
                "one_save_per_command_events_per_s": one_save_rate(store, events),
                "group_commit_8_threads_events_per_s": group_commit_rate(store, events),
            }
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        runs = [measure(backend, args.events) for _ in range(args.repeat)]
        medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
        figures = {"backend": backend, "events": args.events, "repeat": args.repeat, **medians}
        print(json.dumps(figures))
        results.append(figures)
    save("append_rate.json", results)


if __name__ == "__main__":
    main()
