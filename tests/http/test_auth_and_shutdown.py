"""Token mode, the loopback rule, shutdown with open streams, and the OpenAPI document (SQLite)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_harness import Server, serve, sqlite_database

from tasktrail.http.routes import OPERATIONS

TOKEN = "s3cret-api-token"
ADMIN = "s3cret-admin-token"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = sqlite_database(tmp_path_factory.mktemp("secured"))
    with serve(url, tmp_path_factory.mktemp("logs"), api_token=TOKEN, admin_token=ADMIN) as s:
        yield s


def concrete(path: str) -> str:
    return path.replace("{task_id}", "0" * 8 + "-0000-4000-8000-" + "0" * 12).replace(
        "{strategy_id}", "0" * 8 + "-0000-4000-8000-" + "0" * 12
    )


API_OPERATIONS = [o for o in OPERATIONS if o.path.startswith("/api/") and o.path != "/api/session"]


@pytest.mark.parametrize("operation", API_OPERATIONS, ids=lambda o: f"{o.method} {o.path}")
def test_no_api_route_answers_without_the_token(secured: Server, operation: object) -> None:
    with secured.client() as client:
        method, path = operation.method, concrete(operation.path)  # type: ignore[attr-defined]
        assert client.request(method, path).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert client.request(method, path, headers=wrong).status_code == 401


def test_the_bearer_token_opens_the_api_but_not_admin(secured: Server) -> None:
    with secured.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/api/tasks").status_code == 200
        assert client.get("/api/admin/projections").status_code == 403
    with secured.client(headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        assert client.get("/api/admin/projections").status_code == 200


def test_the_session_cookie_opens_the_api_and_streams(secured: Server) -> None:
    with secured.client() as client:
        assert client.get("/api/session").json() == {"auth_required": True, "signed_in": False}
        assert client.post("/api/session", json={"token": "wrong"}).status_code == 401
        signed = client.post("/api/session", json={"token": TOKEN})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert TOKEN not in signed.headers["set-cookie"]
        assert client.get("/api/tasks").status_code == 200
        with client.stream("GET", "/api/stream") as response:
            assert response.status_code == 200


def test_health_stays_open_in_token_mode(secured: Server) -> None:
    with secured.client() as client:
        assert client.get("/healthz").status_code == 200


def test_a_public_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "TASKTRAIL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop("TASKTRAIL_API_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-m", "tasktrail", "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "without an API token" in result.stderr


def test_sigterm_with_100_open_streams_exits_within_5_seconds(tmp_path: Path) -> None:
    url = sqlite_database(tmp_path)
    with serve(url, tmp_path / "logs", log_level="info") as running:
        opened = threading.Barrier(101, timeout=30)
        errors: list[BaseException] = []

        def hold() -> None:
            try:
                with (
                    httpx.Client(base_url=running.base_url, timeout=30) as client,
                    client.stream("GET", "/api/stream") as response,
                ):
                    lines = response.iter_lines()
                    next(lines)
                    opened.wait()
                    for _ in lines:
                        pass
            except (httpx.HTTPError, threading.BrokenBarrierError) as error:
                errors.append(error)

        threads = [threading.Thread(target=hold, daemon=True) for _ in range(100)]
        for thread in threads:
            thread.start()
        opened.wait()
        os.killpg(running.process.pid, signal.SIGTERM)
        running.process.popen.wait(timeout=5)  # raises TimeoutExpired if it hangs
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert running.process.popen.returncode in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in running.process.log_tail(200)
        for thread in threads:
            thread.join(timeout=5)
        assert not [t for t in threads if t.is_alive()]


def test_the_openapi_document_matches_the_routes(secured: Server) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with secured.client() as client:
        document = client.get("/api/openapi.json", headers=headers).json()
        assert document["openapi"].startswith("3.1")
        documented = {
            (method.upper(), path)
            for path, methods in document["paths"].items()
            for method in methods
        }
        assert documented == {(o.method, o.path) for o in OPERATIONS}
        # Every documented route exists: none answers 404/405 for its own method and path.
        for method, path in documented:
            with client.stream(method, concrete(path), headers=headers) as response:
                pass  # the status is enough; streams would never end
            assert response.status_code != 405, (method, path)
            if "{" not in path:
                assert response.status_code != 404, (method, path)
