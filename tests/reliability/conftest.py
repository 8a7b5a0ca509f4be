"""Shared set-up for the fault-tolerance suite: a scaled-out site on one fresh PostgreSQL.

nginx (own prefix, high loopback port) in front of two ``tasktrail serve --no-workers``
nodes and three ``tasktrail worker`` processes. PostgreSQL must be reachable (a failure
under CI=true, a skip elsewhere); nginx missing is a skip outside CI and a failure in CI.
``site`` is shared by a module's tests; ``own_site`` is a fresh one for a test that kills
parts of it, and ``cluster_site`` one on a private PostgreSQL cluster the test may restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_harness import (
    OUTAGE_LEASE_SECONDS,
    SETTINGS,
    Site,
    build_site,
    drop_database,
    fresh_database,
    require_nginx,
    require_postgres,
)
from support.processes import Fleet, PostgresCluster, postgres_cluster


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_postgres()
    require_nginx()
    yield from a_site(tmp_path_factory.mktemp("reliability"))


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[Site]:
    require_postgres()
    require_nginx()
    yield from a_site(tmp_path)


@pytest.fixture
def cluster_site(tmp_path: Path) -> Iterator[tuple[Site, PostgresCluster]]:
    require_nginx()
    with postgres_cluster() as cluster:
        settings = {**SETTINGS, "lease_seconds": OUTAGE_LEASE_SECONDS}
        for built in a_site(tmp_path, cluster.admin_url, settings):
            yield built, cluster


def a_site(
    base: Path, admin_url: str | None = None, settings: dict[str, object] = SETTINGS
) -> Iterator[Site]:
    name, url = fresh_database() if admin_url is None else fresh_database(admin_url)
    fleet = Fleet(base / "logs")
    try:
        yield build_site(base, url, fleet, settings)
    finally:
        fleet.stop_all()
        if admin_url is None:
            drop_database(name)
