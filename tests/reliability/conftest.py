"""Shared set-up for the fault-tolerance suite: a scaled-out site on one fresh PostgreSQL.

nginx (own prefix, high loopback port) in front of two ``tasktrail serve --no-workers``
nodes and three ``tasktrail worker`` processes. PostgreSQL must be reachable (a failure
under CI=true, a skip elsewhere); nginx missing is a skip outside CI and a failure in CI.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reliability_harness import (
    Site,
    build_site,
    drop_database,
    fresh_database,
    require_nginx,
    require_postgres,
)
from support.processes import Fleet


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_postgres()
    require_nginx()
    base = tmp_path_factory.mktemp("reliability")
    name, url = fresh_database()
    fleet = Fleet(base / "logs")
    try:
        yield build_site(base, url, fleet)
    finally:
        fleet.stop_all()
        drop_database(name)
