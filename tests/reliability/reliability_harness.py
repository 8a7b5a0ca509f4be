"""Helpers of the fault-tolerance suite (imported by its conftest and tests)."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support.processes import (
    Fleet,
    Process,
    nginx_available,
    start_nginx,
    start_serve,
    start_worker,
)

ADMIN_URL = os.environ.get(
    "TASKTRAIL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LEASE_SECONDS = 3.0
SETTINGS: dict[str, object] = {"lease_seconds": LEASE_SECONDS}


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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"


def fresh_database() -> tuple[str, str]:
    name = f"tasktrail_rel_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = ADMIN_URL.rpartition("/")
    return name, f"{base}/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def build_site(base: Path, database_url: str, fleet: Fleet) -> Site:
    logs = base / "logs"
    nodes = [
        fleet.add(start_serve(f"serve{i}", database_url, logs, settings=SETTINGS)) for i in (1, 2)
    ]
    workers = [
        fleet.add(start_worker(f"worker{i}", database_url, logs, settings=SETTINGS))
        for i in (1, 2, 3)
    ]
    prefix = base / "nginx"
    nginx = fleet.add(start_nginx(prefix, [n.port or 0 for n in nodes]))
    return Site(database_url, nginx, nodes, workers, fleet, prefix)
