"""Exactly-once under kill -9: a projector killed at random points and restarted applies
every event once (no missed and no doubled update), on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from projection_histories import all_task_ids, folded, viewed, write_random_tasks
from projector_process import Counting

from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import TaskStore
from tasktrail.settings import Settings

SCRIPT = Path(__file__).with_name("projector_process.py")


def applied(sql: sa.Engine) -> list[int]:
    with sql.connect() as connection:
        query = sa.select(Counting.table.c.position).order_by(Counting.table.c.position)
        return [int(p) for p in connection.execute(query).scalars()]


def wait_for_progress(sql: sa.Engine, process: subprocess.Popen[bytes], beyond: int) -> None:
    """Until the projector has applied something new (or ended), so kills land mid-run."""
    deadline = time.monotonic() + 60
    while process.poll() is None and len(applied(sql)) <= beyond:
        assert time.monotonic() < deadline, "the projector made no progress"
        time.sleep(0.02)


def run_projector(database_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRIPT), database_url], cwd=SCRIPT.parent)


def test_a_projector_killed_at_random_points_applies_every_event_exactly_once(
    settings: Settings,
) -> None:
    store = TaskStore(settings)
    sql = create_sql_engine(settings)
    try:
        write_random_tasks(store, 300, seed=42)
        Counting.table.create(sql)
        rng = random.Random(7)
        kills, progress = 0, []
        for _ in range(3):
            process = run_projector(settings.database_url)
            wait_for_progress(sql, process, beyond=len(applied(sql)))
            time.sleep(rng.uniform(0.0, 0.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait(timeout=30)
            progress.append(len(applied(sql)))
        final = run_projector(settings.database_url)
        assert final.wait(timeout=120) == 0
        events = [n.id for n in store.recorder.select_notifications(start=1, limit=1_000_000)]
        assert kills >= 2, f"the projector finished before it could be killed: {progress}"
        assert any(0 < p < len(events) for p in progress)
        assert applied(sql) == events
        assert viewed(sql) == folded(store, all_task_ids(store))
    finally:
        sql.dispose()
        store.close()
