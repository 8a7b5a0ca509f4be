"""Retention (the plan's property 7) and the archive it writes, on both backends."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tasktrail import bootstrap
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.task import TaskStatus
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings

ENDINGS = ["pending", "running", "completed", "failed", "cancelled"]


def make_task(service: ExecutionService, ending: str) -> uuid.UUID:
    task = service.start_execution("tasktrail.sleep", {"seconds": 0})
    if ending == "pending":
        return task.id
    if ending == "cancelled":
        service.cancel_task(task.id)
        return task.id
    service.decide(task.id, lambda t: t.start("w1"))
    service.decide(task.id, lambda t: t.update_progress(1, 2, "sleeping"))
    if ending == "completed":
        service.decide(task.id, lambda t: t.complete({"matched": 0, "scanned": 2}))
    elif ending == "failed":
        service.decide(task.id, lambda t: t.fail("RuntimeError", "boom"))
    return task.id


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasktrail", "--database-url", settings.database_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TASKTRAIL_ARCHIVE_DIR": settings.archive_dir},
    )


def test_property_7_cleanup_removes_exactly_the_tasks_that_ended_before_the_cutoff(
    settings: Settings,
) -> None:
    container = bootstrap.build(settings, upgrade=False)
    projector = Projector(container.sql, bootstrap.read_side_projections())
    service = container.service

    @given(
        old=st.lists(st.sampled_from(ENDINGS), max_size=6),
        young=st.lists(st.sampled_from(ENDINGS), max_size=6),
    )
    @hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
    def check(old: list[str], young: list[str]) -> None:
        old_ids = {make_task(service, e): e for e in old}
        time.sleep(0.01)
        cutoff = datetime.now(UTC)
        time.sleep(0.01)
        young_ids = {make_task(service, e): e for e in young}
        projector.catch_up(container.store)
        now = cutoff + timedelta(days=settings.retention_days)
        result = cli(settings, "cleanup", "--now", now.isoformat())
        assert result.returncode == 0, result.stderr
        removed = {i for i, e in old_ids.items() if e not in ("pending", "running")}
        for task_id in [*old_ids, *young_ids]:
            present = bool(container.store.positions_of(task_id))
            assert present == (task_id not in removed), (old_ids.get(task_id), task_id)
        for task_id in removed:
            assert container.store.positions_of(task_id) == []

    try:
        check()
    finally:
        container.close()


def test_the_archive_replays_and_verifies_without_the_database(
    settings: Settings, tmp_path: Path
) -> None:
    container = bootstrap.build(settings, upgrade=False)
    task_id = make_task(container.service, "completed")
    Projector(container.sql, bootstrap.read_side_projections()).catch_up(container.store)
    head_before = container.store.head()
    container.close()
    later = (datetime.now(UTC) + timedelta(days=31)).isoformat()

    dry = cli(settings, "cleanup", "--now", later, "--dry-run")
    assert dry.returncode == 0
    assert str(task_id) in dry.stdout

    result = cli(settings, "cleanup", "--now", later)
    assert result.returncode == 0, result.stderr
    archive = next(Path(settings.archive_dir).glob("*.jsonl.gz"))
    assert str(archive) in result.stdout
    replayed = cli(settings, "replay", str(task_id), "--archive", str(archive), "--json")
    assert replayed.returncode == 0, replayed.stderr
    lines = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert [s["type"] for s in lines[:-1]][-1] == "task.completed"
    assert lines[-1]["verdict"] == "intact"
    gone = cli(settings, "replay", str(task_id))
    assert gone.returncode == 2

    # A later event gets a new, higher position: none is ever reused.
    container = bootstrap.build(settings, upgrade=False)
    new_task = container.service.start_execution("tasktrail.sleep", {"seconds": 0})
    assert container.store.positions_of(new_task.id)[0][1] > head_before
    assert container.service.get_task(new_task.id).status is TaskStatus.PENDING
    container.close()

    cut = tmp_path / "cut.jsonl.gz"
    with gzip.open(archive, "rt") as source:
        cut_lines = source.read().splitlines()[:-1]
    with gzip.open(cut, "wt") as target:
        target.write("\n".join(cut_lines) + "\n")
    broken = cli(settings, "replay", str(task_id), "--archive", str(cut))
    assert broken.returncode == 2
    assert "cut short" in broken.stderr
