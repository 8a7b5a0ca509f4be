"""`tasktrail replay` and `tasktrail audit verify` on what does not exist or cannot be read: a
clear one-line error, a non-zero exit status and no traceback."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from test_cli_basics import run

from tasktrail import bootstrap, schema
from tasktrail.engine import retention
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings


def assert_one_line_error(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert phrase in lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["replay", "{id}"],
        ["replay", "{id}", "--json"],
        ["replay", "{id}", "--at", "1"],
        ["replay", "{id}", "--follow"],
        ["audit", "verify", "--task", "{id}"],
    ],
    ids=" ".join,
)
def test_a_task_id_that_does_not_exist_is_a_one_line_error(
    settings: Settings, command: list[str]
) -> None:
    task_id = str(uuid.uuid4())
    args = [part.replace("{id}", task_id) for part in command]
    result = run("--database-url", settings.database_url, *args)
    assert_one_line_error(result, f"no task with id {task_id}")


# -- archives: reading one needs no database, so one backend is enough to write it --------


@pytest.fixture
def archive(sqlite_url: str, tmp_path: Path) -> tuple[uuid.UUID, Path]:
    """A task of five events and an intact archive holding it."""
    settings = Settings(database_url=sqlite_url, seed_examples=False)
    schema.upgrade(settings)
    container = bootstrap.build(settings, upgrade=False)
    try:
        service = container.service
        task = service.start_execution("tasktrail.sleep", {"seconds": 0, "steps": 2})
        service.decide(task.id, lambda t: t.start("worker-1"))
        for step in (1, 2):
            service.decide(
                task.id,
                partial(ExecutionTask.update_progress, current=step, total=2, phase="sleeping"),
            )
        service.decide(task.id, lambda t: t.complete({"matched": 0, "scanned": 2}))
        path, _ = retention.write_archive(container.store, tmp_path / "archives", [task.id])
    finally:
        container.close()
    return task.id, path


def lines_of(path: Path) -> list[dict[str, object]]:
    with gzip.open(path, "rt") as source:
        return [json.loads(line) for line in source]


def rewrite_event(path: Path, target: Path, index: int, **changes: object) -> Path:
    lines = lines_of(path)
    event = {**lines[index], **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del event[key]
    lines[index] = event
    with gzip.open(target, "wt") as out:
        out.write("".join(json.dumps(line) + "\n" for line in lines))
    return target


def truncated(path: Path, target: Path) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def not_gzip(path: Path, target: Path) -> Path:
    target.write_bytes(b"task_id,version\n1,2\n")
    return target


def gzip_of_garbage(path: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(b'{"format": "tasktrail-archive/1"\n{{{ not json\n'))
    return target


def gzip_of_other_json(path: Path, target: Path) -> Path:
    target.write_bytes(gzip.compress(b"[1, 2]\n[3]\n"))
    return target


def event_without_its_version(path: Path, target: Path) -> Path:
    return rewrite_event(path, target, 2, version=None)


def event_with_undecodable_bytes(path: Path, target: Path) -> Path:
    return rewrite_event(path, target, 2, state=base64.b64encode(b'{"digest": ').decode())


@pytest.mark.parametrize(
    ("corrupt", "phrase"),
    [
        pytest.param(corrupt, phrase, id=corrupt.__name__)
        for corrupt, phrase in [
            (truncated, "is not a readable archive"),
            (not_gzip, "is not a readable archive"),
            (gzip_of_garbage, "is not a readable archive"),
            (gzip_of_other_json, "is not a tasktrail-archive/1 file"),
            (event_without_its_version, "line 3 is not an archived event"),
            (event_with_undecodable_bytes, "version 2 of task"),
        ]
    ],
)
def test_a_corrupt_archive_is_a_one_line_error(
    archive: tuple[uuid.UUID, Path],
    tmp_path: Path,
    corrupt: Callable[[Path, Path], Path],
    phrase: str,
) -> None:
    task_id, path = archive
    broken = corrupt(path, tmp_path / "broken.jsonl.gz")
    result = run("replay", str(task_id), "--archive", str(broken))
    assert_one_line_error(result, phrase)


def test_an_archive_that_is_missing_is_a_one_line_error(
    archive: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    result = run("replay", str(archive[0]), "--archive", str(tmp_path / "gone.jsonl.gz"))
    assert_one_line_error(result, "No such file")


def test_an_archive_without_the_task_is_a_one_line_error(archive: tuple[uuid.UUID, Path]) -> None:
    other = uuid.uuid4()
    result = run("replay", str(other), "--archive", str(archive[1]))
    assert_one_line_error(result, f"no task with id {other}")


def test_a_tampered_event_in_an_archive_is_named_and_the_exit_status_is_1(
    archive: tuple[uuid.UUID, Path], tmp_path: Path
) -> None:
    task_id, path = archive
    intact = run("replay", str(task_id), "--archive", str(path), "--json")
    assert intact.returncode == 0, intact.stderr
    assert json.loads(intact.stdout.splitlines()[-1]) == {"verdict": "intact", "findings": []}

    started = lines_of(path)[2]
    assert started["version"] == 2
    state = base64.b64decode(str(started["state"])).replace(b"worker-1", b"worker-9")
    tampered = rewrite_event(
        path, tmp_path / "tampered.jsonl.gz", 2, state=base64.b64encode(state).decode()
    )
    result = run("replay", str(task_id), "--archive", str(tampered), "--json")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    verdict = json.loads(result.stdout.splitlines()[-1])
    assert verdict["verdict"] == "tampered"
    assert [(f["position"], f["version"]) for f in verdict["findings"]] == [
        (started["position"], 2)
    ]
    text = run("replay", str(task_id), "--archive", str(tampered))
    assert text.returncode == 1
    assert f"position {started['position']} version 2" in text.stdout


def test_replay_strategy_since_lists_that_strategys_runs_in_the_period_newest_first(
    settings: Settings,
) -> None:
    container = bootstrap.build(settings, upgrade=False)
    try:
        service = container.service

        def submit(strategy_id: str) -> str:
            parameters = {"seconds": 0, "strategy_id": strategy_id}
            return str(service.start_execution("tasktrail.sleep", parameters).id)

        early = submit("s1")
        time.sleep(0.05)
        cut = datetime.now(UTC)
        time.sleep(0.05)
        later = [submit("s1"), submit("s2"), submit("s1")]
        service.decide(uuid.UUID(later[0]), lambda t: t.cancel("auditor", "test"))
        Projector(container.sql, bootstrap.read_side_projections()).catch_up(container.store)
    finally:
        container.close()
    url = ("--database-url", settings.database_url)

    every = run(*url, "replay", "--strategy", "s1", "--json")
    assert every.returncode == 0, every.stderr
    runs = [json.loads(line) for line in every.stdout.splitlines()]
    assert [r["id"] for r in runs] == [later[2], later[0], early]
    assert [r["status"] for r in runs] == ["PENDING", "CANCELLED", "PENDING"]

    since = run(*url, "replay", "--strategy", "s1", "--since", cut.isoformat())
    assert since.returncode == 0, since.stderr
    assert later[0] in since.stdout
    assert later[2] in since.stdout
    assert early not in since.stdout
    assert since.stdout.splitlines()[-1] == "2 runs"

    assert_one_line_error(run(*url, "replay", "--strategy", "s1", "--since", "soon"), "not a date")
