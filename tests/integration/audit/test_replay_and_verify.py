"""`tasktrail replay` and `tasktrail audit verify` as an auditor runs them, on both backends,
including tampered logs: altered bytes, altered content, a deleted event and a cut tail."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from tasktrail import bootstrap
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings


@dataclass
class Run:
    settings: Settings
    task_id: uuid.UUID
    column: str


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasktrail", "--database-url", settings.database_url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def run(settings: Settings) -> Run:
    """A completed run with progress, projected into the task view."""
    container = bootstrap.build(settings, upgrade=False)
    service = container.service
    task = service.start_execution("tasktrail.sleep", {"seconds": 0, "steps": 3})
    service.decide(task.id, lambda t: t.start("worker-7"))
    for i in (1, 2, 3):
        service.decide(
            task.id, partial(ExecutionTask.update_progress, current=i, total=3, phase="sleeping")
        )
    service.decide(task.id, lambda t: t.complete({"matched": 1, "scanned": 3}))
    Projector(container.sql, bootstrap.read_side_projections()).catch_up(container.store)
    container.close()
    return Run(settings, task.id, "position" if settings.is_sqlite else "notification_id")


def execute(settings: Settings, statement: str, **params: object) -> None:
    engine = create_sql_engine(settings)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def test_replay_prints_every_event_with_the_state_after_it_and_an_intact_verdict(
    run: Run,
) -> None:
    result = run_cli(run.settings, "replay", str(run.task_id), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    steps, verdict = lines[:-1], lines[-1]
    assert [s["type"] for s in steps] == [
        "task.created",
        "task.started",
        "task.progress_updated",
        "task.progress_updated",
        "task.progress_updated",
        "task.completed",
    ]
    assert [s["state"]["progress"]["percent"] for s in steps] == [0, 0, 33, 66, 100, 100]
    assert steps[-1]["state"]["status"] == "COMPLETED"
    assert verdict == {"verdict": "intact", "findings": []}
    table = run_cli(run.settings, "replay", str(run.task_id))
    assert table.returncode == 0
    assert "worker-7" in table.stdout
    assert "chain intact over 6 events" in table.stdout


def test_replay_at_a_version_prints_the_state_then(run: Run) -> None:
    result = run_cli(run.settings, "replay", str(run.task_id), "--at", "3", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["status"], state["version"], state["progress"]["current"]) == ("RUNNING", 3, 1)


def test_an_unknown_or_garbled_task_id_is_a_clear_error(run: Run) -> None:
    for task_id in (str(uuid.uuid4()), "not-an-id"):
        result = run_cli(run.settings, "replay", task_id)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "task" in result.stderr


def test_altered_content_is_reported_with_its_position(run: Run) -> None:
    # Rewrite the second progress event's "current" inside the stored JSON.
    engine = create_sql_engine(run.settings)
    with engine.begin() as connection:
        row = connection.execute(
            sa.text(
                f"SELECT {run.column} AS p, state FROM tasktrail_events "
                "WHERE originator_version = 4 AND topic = 'task.progress_updated'"
            )
        ).one()
        state = bytes(row.state).replace(b'"current":2', b'"current":3')
        assert state != bytes(row.state)
        connection.execute(
            sa.text(f"UPDATE tasktrail_events SET state = :s WHERE {run.column} = :p"),
            {"s": state, "p": row.p},
        )
    engine.dispose()
    result = run_cli(run.settings, "audit", "verify", "--all", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["verdict"] == "tampered"
    assert [(f["position"], f["version"]) for f in report["findings"]] == [(row.p, 4)]


def test_undecodable_bytes_are_reported(run: Run) -> None:
    execute(
        run.settings,
        "UPDATE tasktrail_events SET state = :s WHERE originator_version = 2",
        s=b"\x00garbage",
    )
    result = run_cli(run.settings, "replay", str(run.task_id), "--verify", "--json")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_a_deleted_middle_event_is_reported(run: Run) -> None:
    execute(run.settings, "DELETE FROM tasktrail_events WHERE originator_version = 3")
    result = run_cli(run.settings, "audit", "verify", "--all", "--json")
    assert result.returncode == 1
    reasons = [f["reason"] for f in json.loads(result.stdout)["findings"]]
    assert any("expected version 3" in r for r in reasons)


def test_a_cut_tail_is_caught_by_the_task_view_anchor(run: Run) -> None:
    execute(run.settings, "DELETE FROM tasktrail_events WHERE originator_version = 6")
    result = run_cli(run.settings, "replay", str(run.task_id), "--verify", "--json")
    assert result.returncode == 1
    findings = json.loads(result.stdout.splitlines()[-1])["findings"]
    assert [f["version"] for f in findings] == [6]
    assert "task view saw version 6" in findings[0]["reason"]


def rows_at(run: Run, *versions: int) -> list[sa.Row[Any]]:
    engine = create_sql_engine(run.settings)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    sa.text(
                        f"SELECT {run.column} AS p, topic, state FROM tasktrail_events "
                        "WHERE originator_version IN :versions ORDER BY originator_version"
                    ).bindparams(sa.bindparam("versions", expanding=True)),
                    {"versions": list(versions)},
                )
            )
    finally:
        engine.dispose()


def swap_contents(run: Run, first: int, second: int) -> tuple[int, int]:
    """Exchange the stored type and bytes of two events; returns the positions now holding
    versions ``first`` and ``second``."""
    a, b = rows_at(run, first, second)
    for row, other in ((a, b), (b, a)):
        execute(
            run.settings,
            f"UPDATE tasktrail_events SET topic = :t, state = :s WHERE {run.column} = :p",
            t=other.topic,
            s=other.state,
            p=row.p,
        )
    return a.p, b.p


def swap_versions(run: Run, first: int, second: int) -> tuple[int, int]:
    """Exchange the version numbers of two stored events (their order in the chain)."""
    a, b = rows_at(run, first, second)
    for version, position in ((-1, a.p), (first, b.p), (second, a.p)):
        execute(
            run.settings,
            f"UPDATE tasktrail_events SET originator_version = :v WHERE {run.column} = :p",
            v=version,
            p=position,
        )
    return b.p, a.p


@pytest.mark.parametrize("swap", [swap_contents, swap_versions])
def test_two_swapped_events_are_each_reported_with_their_position(
    run: Run, swap: Callable[[Run, int, int], tuple[int, int]]
) -> None:
    now_3, now_4 = swap(run, 3, 4)
    for command in (["audit", "verify", "--all"], ["replay", str(run.task_id), "--verify"]):
        result = run_cli(run.settings, *command, "--json")
        assert result.returncode == 1, result.stderr
        findings = json.loads(result.stdout.splitlines()[-1])["findings"]
        assert [(f["position"], f["version"]) for f in findings[:2]] == [(now_3, 3), (now_4, 4)]
        # The next event no longer chains to the one stored before it; nothing earlier is blamed.
        assert [f["version"] for f in findings[2:]] == [5]


def test_speed_unfolds_every_event_in_order_then_the_verdict(run: Run) -> None:
    task_id = str(run.task_id)
    plain = run_cli(run.settings, "replay", task_id, "--json")
    fast = run_cli(run.settings, "replay", task_id, "--json", "--speed", "1000")
    assert fast.returncode == 0, fast.stderr
    assert fast.stdout == plain.stdout
    text = run_cli(run.settings, "replay", task_id, "--speed", "1000")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    types = [json.loads(line)["type"] for line in plain.stdout.splitlines()[:-1]]
    assert [line.split()[4] for line in lines[:-1]] == types
    assert lines[-1] == f"verdict: chain intact over {len(types)} events"
    assert run_cli(run.settings, "replay", task_id, "--speed", "0").returncode == 2
