"""Cleanup rate: ``tasktrail cleanup`` archiving and removing N ended tasks, both backends.

    .venv/bin/python benchmarks/audit_cleanup.py --tasks 10000 --backend both

Per backend, on a fresh database: writes ``--tasks`` COMPLETED tasks (created, started, three
progress updates, completed: six events each, many tasks per save), projects them, then runs
the real ``tasktrail cleanup`` as a subprocess with a ``--now`` past the retention period.
Reports the command's wall time (start-up included) and its own figure (archive + removal),
as tasks/s and events/s, and the archive's size. Prints one JSON line per backend and saves
them under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import save
from rebuild_rate import database

from tasktrail import bootstrap, schema
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings

TASKS_PER_SAVE = 200
EVENTS_PER_TASK = 6
REMOVED = re.compile(r"removed (\d+) tasks, (\d+) events in ([\d.]+) s")


def write_ended_tasks(container: bootstrap.Container, count: int) -> None:
    for start in range(0, count, TASKS_PER_SAVE):
        tasks = [
            ExecutionTask.submit(uuid.uuid4(), "tasktrail.sleep", {"seconds": 0, "n": start + i})
            for i in range(min(TASKS_PER_SAVE, count - start))
        ]
        for task in tasks:
            task.start("bench-worker")
            for step in (1, 2, 3):
                task.update_progress(step, 3, "sleeping")
            task.complete({"matched": 0, "scanned": 3})
        container.store.save(*tasks)


def run_cleanup(url: str, archive_dir: Path, days: int) -> tuple[float, str]:
    later = (datetime.now(UTC) + timedelta(days=days + 1)).isoformat()
    argv = [sys.executable, "-m", "tasktrail", "--database-url", url, "cleanup", "--now", later]
    argv += ["--archive-dir", str(archive_dir)]
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=True)
    return time.perf_counter() - began, done.stdout


def measure(backend: str, tasks: int) -> dict[str, object]:
    with database(backend) as url, tempfile.TemporaryDirectory() as archive_dir:
        settings = Settings(database_url=url, seed_examples=False)
        schema.upgrade(settings)
        container = bootstrap.build(settings, upgrade=False)
        try:
            write_ended_tasks(container, tasks)
            Projector(container.sql, bootstrap.read_side_projections()).catch_up(container.store)
            wall, output = run_cleanup(url, Path(archive_dir), settings.retention_days)
            left = len(container.store.recorder.select_notifications(start=1, limit=tasks))
        finally:
            container.close()
        found = REMOVED.search(output)
        if found is None:
            raise SystemExit(f"cleanup printed no figures:\n{output}")
        removed_tasks, removed_events, seconds = int(found[1]), int(found[2]), float(found[3])
        archive = next(Path(archive_dir).glob("*.jsonl.gz"))
        return {
            "backend": backend,
            "tasks": removed_tasks,
            "events": removed_events,
            "events_left_in_log": left,
            "command_wall_seconds": round(wall, 2),
            "cleanup_seconds": seconds,
            "tasks_per_second": round(removed_tasks / seconds),
            "events_per_second": round(removed_events / seconds),
            "wall_tasks_per_second": round(removed_tasks / wall),
            "archive_bytes": archive.stat().st_size,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [measure(b, args.tasks) for b in backends]
    for result in results:
        print(json.dumps(result))
    out = save("audit_cleanup.json", results)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
