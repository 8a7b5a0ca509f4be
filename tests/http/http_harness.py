"""Helpers for the HTTP tests: a real ``tasktrail serve`` subprocess and a writer beside it.

Events are written by the test process straight into the same event store (a second
process, as a worker elsewhere would be), so the server's follower, projector and hub see
them exactly as they see a worker's.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from support.processes import Process, start_serve

from tasktrail import schema
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.settings import Settings

FAST = {"poll_seconds": 0.02, "sse_ping_seconds": 2, "log_level": "warning"}


@dataclass
class Server:
    """A running server, its database and a writer on the same event store."""

    process: Process
    database_url: str
    writer: Writer

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.process.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0, **kwargs)


class Writer:
    """Drives tasks through their lifecycle in the test process (a stand-in worker)."""

    def __init__(self, database_url: str) -> None:
        self.store = TaskStore(Settings(database_url=database_url))

    def submit(self, kind: str = "test.echo", **parameters: Any) -> ExecutionTask:
        task = ExecutionTask.submit(uuid.uuid4(), kind, parameters)
        self.store.save(task)
        return task

    def start(self, task: ExecutionTask, worker: str = "test-worker") -> ExecutionTask:
        task.start(worker)
        self.store.save(task)
        return task

    def progress(self, task: ExecutionTask, current: int, total: int) -> ExecutionTask:
        task.update_progress(current, total, "filtering", f"{current} of {total}")
        self.store.save(task)
        return task

    def complete(self, task: ExecutionTask, matched: int = 1) -> ExecutionTask:
        task.complete({"columns": ["symbol"], "rows": [["AAA"]], "matched": matched, "scanned": 3})
        self.store.save(task)
        return task

    def finished_run(self, steps: int = 3, **parameters: Any) -> ExecutionTask:
        task = self.start(self.submit(**parameters))
        for step in range(1, steps + 1):
            self.progress(task, step, steps)
        return self.complete(task)

    def close(self) -> None:
        self.store.close()


ADMIN_URL = os.environ.get(
    "TASKTRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_postgres() -> None:
    """Skip (fail under CI) when PostgreSQL is not reachable, as tests/conftest.py does."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return
    except psycopg.Error as error:
        if IN_CI:
            pytest.fail(f"PostgreSQL not reachable: {error} (CI=true)")
        pytest.skip(f"PostgreSQL not reachable: {error}")


def sqlite_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'tasktrail.db'}"
    schema.upgrade(Settings(database_url=url))
    return url


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh migrated PostgreSQL database, dropped afterwards."""
    require_postgres()
    name = f"tasktrail_http_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    try:
        schema.upgrade(Settings(database_url=url))
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def serve(database_url: str, log_dir: Path, **settings: Any) -> Iterator[Server]:
    """``tasktrail serve --no-workers`` on a free port with fast test settings."""
    process = start_serve("serve", database_url, log_dir, settings={**FAST, **settings})
    writer = Writer(database_url)
    try:
        yield Server(process, database_url, writer)
    finally:
        writer.close()
        process.stop(timeout=10)
