"""Helpers of the fault-tolerance suite (imported by its conftest and tests)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql
from support.processes import (
    Fleet,
    Process,
    ProcessError,
    nginx_available,
    start_nginx,
    start_serve,
    start_worker,
    wait_until,
)
from support.sse import StreamRecorder

from tasktrail.engine.locks import PROJECTOR_LOCK_KEY, holder

ADMIN_URL = os.environ.get(
    "TASKTRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LEASE_SECONDS = 3.0
SETTINGS: dict[str, object] = {"lease_seconds": LEASE_SECONDS}
# Leases that outlast a short database outage: runs in hand during one must still complete.
OUTAGE_LEASE_SECONDS = 15.0
SLEEP = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}
TERMINAL = ("task.completed", "task.failed", "task.cancelled")
STATUS_AFTER = {
    "task.completed": "COMPLETED",
    "task.failed": "FAILED",
    "task.cancelled": "CANCELLED",
}


def require_postgres() -> None:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return
    except psycopg.Error as error:
        problem = f"PostgreSQL not reachable at {ADMIN_URL}: {error}"
    if IN_CI:
        pytest.fail(f"{problem} (CI=true: the reliability suite must run)")
    pytest.skip(problem)


def require_nginx() -> None:
    if nginx_available():
        return
    if IN_CI:
        pytest.fail("nginx is not installed (CI=true: the reliability suite must run)")
    pytest.skip("nginx is not installed: apt-get install nginx-light to run tests/reliability")


@dataclass
class Site:
    database_url: str
    nginx: Process
    nodes: list[Process]
    workers: list[Process]
    fleet: Fleet
    nginx_prefix: Path
    settings: dict[str, object]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"

    @property
    def processes(self) -> list[Process]:
        return [*self.nodes, *self.workers]

    def alive(self, processes: Sequence[Process]) -> list[Process]:
        return [p for p in processes if p.alive()]

    def projector_process(self, key: int = PROJECTOR_LOCK_KEY) -> Process | None:
        """The site process whose connection holds the projector's (or ``key``'s) advisory
        lock now."""
        engine = sa.create_engine(
            self.database_url.replace("postgresql://", "postgresql+psycopg://")
        )
        try:
            lock = holder(engine, key)
        finally:
            engine.dispose()
        pid = lock.process_id if lock else None
        return next((p for p in self.processes if p.pid == pid and p.alive()), None)

    def wait_for_projector(self, timeout: float = 20.0) -> tuple[Process, float]:
        """The (alive) projector holder once there is one, and how long that took."""
        started = time.monotonic()
        found: list[Process] = []

        def held() -> bool:
            process = self.projector_process()
            if process is not None:
                found.append(process)
            return process is not None

        wait_until(held, timeout, "an active projector among the live processes", interval=0.1)
        return found[-1], time.monotonic() - started

    def registered_pids(self) -> set[int]:
        """The pids of the worker processes with a lease row."""
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            return {int(row[0]) for row in connection.execute("SELECT pid FROM workers")}

    def running_by_pid(self) -> dict[int, int]:
        """How many RUNNING tasks (in the task view) each registered worker process holds."""
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT w.pid, count(*) FROM task_view t JOIN workers w"
                " ON w.worker_id = t.worker_id WHERE t.status = 'RUNNING' GROUP BY w.pid"
            ).fetchall()
        return {int(pid): int(count) for pid, count in rows}

    def wait_for_workers(self, workers: Sequence[Process], timeout: float = 60.0) -> None:
        """Wait until each of ``workers`` has registered its lease (it is claiming work)."""

        def registered() -> bool:
            for worker in workers:
                worker.require_alive()
            return {w.pid for w in workers} <= self.registered_pids()

        wait_until(registered, timeout, "the workers to register", interval=0.2)

    def database_connections(self) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            row = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchone()
        return int(row[0]) if row else 0


def fresh_database(admin_url: str = ADMIN_URL) -> tuple[str, str]:
    name = f"tasktrail_rel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    return name, f"{base}/{name}"


def drop_database(name: str, admin_url: str = ADMIN_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def build_site(
    base: Path, database_url: str, fleet: Fleet, settings: dict[str, object] = SETTINGS
) -> Site:
    logs = base / "logs"
    nodes = [
        fleet.add(start_serve(f"serve{i}", database_url, logs, settings=settings)) for i in (1, 2)
    ]
    workers = [
        fleet.add(start_worker(f"worker{i}", database_url, logs, settings=settings))
        for i in (1, 2, 3)
    ]
    prefix = base / "nginx"
    nginx = fleet.add(start_nginx(prefix, [n.port or 0 for n in nodes]))
    site = Site(database_url, nginx, nodes, workers, fleet, prefix, settings)
    site.wait_for_workers(workers)
    return site


# -- load and checks -----------------------------------------------------------------------


def submit(client: httpx.Client, url: str, body: dict[str, Any] = SLEEP) -> str:
    """POST a run; retried with the same Idempotency-Key while the site answers 5xx or not at
    all (a node killed mid-request), so a retry can never make a second task."""
    key = {"Idempotency-Key": uuid.uuid4().hex}
    problems: list[str] = []
    for _ in range(150):
        try:
            answer = client.post(f"{url}/api/tasks", json=body, headers=key)
        except httpx.TransportError as error:
            problems.append(type(error).__name__)
        else:
            if answer.status_code == 202:
                task_id: str = answer.json()["task_id"]
                return task_id
            assert answer.status_code >= 500, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json"), (
                answer.status_code,
                answer.text[:200],
            )
            problems.append(str(answer.status_code))
        time.sleep(0.2)
    raise AssertionError(f"submission kept failing: {problems[-5:]}")


def get_json(client: httpx.Client, url: str) -> Any:
    """GET that rides out a moment of unavailability (5xx or no answer), then must be 200."""
    for _ in range(100):
        try:
            answer = client.get(url)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if answer.status_code < 500:
            assert answer.status_code == 200, answer.text
            return answer.json()
        time.sleep(0.2)
    raise AssertionError(f"GET {url} kept failing")


def events_of(client: httpx.Client, url: str, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = get_json(client, f"{url}/api/tasks/{task_id}/events")["events"]
    return events


def counts(client: httpx.Client, url: str) -> dict[str, int]:
    found: dict[str, int] = get_json(client, f"{url}/api/tasks")["counts"]
    return found


def wait_until_settled(client: httpx.Client, url: str, runs: int, timeout: float) -> float:
    """Wait until the task view shows ``runs`` tasks and none PENDING or RUNNING."""
    started = time.monotonic()

    def settled() -> bool:
        found = counts(client, url)
        ended = sum(int(found.get(status, 0)) for status in STATUS_AFTER.values())
        return ended >= runs and not found.get("RUNNING") and not found.get("PENDING")

    try:
        wait_until(settled, timeout, f"{runs} runs to end", interval=0.5)
    except ProcessError as error:
        raise ProcessError(f"{error}; {unsettled(client, url)}") from None
    return time.monotonic() - started


def unsettled(client: httpx.Client, url: str) -> str:
    """What a failed wait saw: the counts, and each PENDING or RUNNING task's events."""
    found = [f"counts {counts(client, url)}"]
    for status in ("PENDING", "RUNNING"):
        for task in get_json(client, f"{url}/api/tasks?status={status}&limit=5")["items"]:
            events = [(e["type"], e["data"]) for e in events_of(client, url, task["id"])]
            found.append(f"{status} {task['id']} worker {task.get('worker_id')}: {events}")
    return "; ".join(found)


def lifecycle_problems(
    client: httpx.Client, url: str, task_ids: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Each task's events, and what is wrong with them: more than one Started, not exactly
    one terminal event, a gap in the versions, or a task view that disagrees with the log."""
    per_task: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for task_id in task_ids:
        events = per_task[task_id] = events_of(client, url, task_id)
        types = [e["type"] for e in events]
        if types.count("task.started") > 1 or sum(t in TERMINAL for t in types) != 1:
            problems.append(f"{task_id}: {types}")
            continue
        if [e["version"] for e in events] != list(range(1, len(events) + 1)):
            problems.append(f"{task_id}: versions {[e['version'] for e in events]}")
        view = get_json(client, f"{url}/api/tasks/{task_id}")
        if (view["status"], view["version"]) != (STATUS_AFTER[types[-1]], len(events)):
            problems.append(f"{task_id}: view {view['status']} v{view['version']} vs {types}")
    return per_task, problems


def stream_problems(
    recorders: Sequence[StreamRecorder], per_task: dict[str, list[dict[str, Any]]]
) -> list[str]:
    """Each stream must hold every event of ``per_task`` once, in order, and no position twice."""
    expected = sorted(e["position"] for events in per_task.values() for e in events)
    ours = set(expected)
    problems = []
    for recorder in recorders:
        every = recorder.positions()
        if every != sorted(set(every)):
            problems.append(f"{recorder.name}: out of order or doubled")
        positions = [p for p in every if p in ours]
        if positions != expected:
            missing = sorted(ours - set(positions))
            problems.append(
                f"{recorder.name}: {len(positions)} of {len(expected)}, missing {missing[:5]}"
            )
    return problems


def open_streams(url: str, count: int, after: int) -> list[StreamRecorder]:
    recorders = [
        StreamRecorder(f"{url}/api/stream?after={after}", name=f"sse{i}").start()
        for i in range(count)
    ]
    for recorder in recorders:
        assert recorder.connected.wait(15), recorder.errors
    return recorders


def wait_for_streams(recorders: Sequence[StreamRecorder], last_position: int) -> None:
    wait_until(
        lambda: all(max(r.positions(), default=0) >= last_position for r in recorders),
        60,
        "the streams to reach the last event",
    )
    time.sleep(0.5)  # anything doubled after the last event would arrive now
    for recorder in recorders:
        recorder.stop()
