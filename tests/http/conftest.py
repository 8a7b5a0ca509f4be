"""Fixtures for the HTTP tests: one real server per test module and backend."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from http_harness import Server, postgres_database, serve, sqlite_database


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database for one test module, on each backend."""
    if request.param == "sqlite":
        yield sqlite_database(tmp_path_factory.mktemp("http"))
        return
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a tiny SSE ring, so resuming streams exercises the database catch-up."""
    with serve(
        module_database_url,
        tmp_path_factory.mktemp("logs"),
        sse_ring_size=8,
        sse_queue_size=10_000,
    ) as running:
        yield running


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
