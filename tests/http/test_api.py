"""The REST API against a real server on both backends: happy paths and every error status."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import httpx
import pytest
from http_harness import Server

PROBLEM = "application/problem+json"


def wait_for_view(api: httpx.Client, server: Server, timeout: float = 10) -> None:
    """Wait until the task view has applied everything written so far."""
    head = server.writer.store.head()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        projections = api.get("/api/admin/projections").json()["projections"]
        if all(p["position"] >= head for p in projections if p["name"] == "task_view"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the task view never reached position {head}")


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


def test_health_and_readiness_answer(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] is True


def test_metrics_expose_tasks_events_clients_and_lag(api: httpx.Client, server: Server) -> None:
    server.writer.finished_run()
    text = api.get("/metrics").text
    for name in (
        "tasktrail_tasks",
        "tasktrail_events_appended_total",
        "tasktrail_event_append_latency_seconds",
        "tasktrail_sse_clients",
        "tasktrail_projection_lag_events",
    ):
        assert name in text


def test_a_finished_run_reads_back_from_list_get_events_and_result(
    api: httpx.Client, server: Server
) -> None:
    task = server.writer.finished_run(steps=2)
    task_id = str(task.id)
    wait_for_view(api, server)
    shown = api.get(f"/api/tasks/{task_id}").json()
    assert shown["status"] == "COMPLETED"
    assert shown["progress"]["percent"] == 100
    assert shown["result_summary"] == {"matched": 1, "scanned": 3}
    listed = api.get("/api/tasks", params={"status": "COMPLETED", "limit": 500}).json()
    assert task_id in [item["id"] for item in listed["items"]]
    assert listed["counts"]["COMPLETED"] >= 1
    assert listed["position"] >= 1
    history = api.get(f"/api/tasks/{task_id}/events").json()
    assert history["verified"] is True
    assert [e["type"] for e in history["events"]] == [
        "task.created",
        "task.started",
        "task.progress_updated",
        "task.progress_updated",
        "task.completed",
    ]
    assert history["events"][-1]["state"]["status"] == "COMPLETED"
    assert api.get(f"/api/tasks/{task_id}/result").json()["matched"] == 1


def test_at_version_shows_the_state_after_that_event(api: httpx.Client, server: Server) -> None:
    task = server.writer.finished_run(steps=2)
    second = api.get(f"/api/tasks/{task.id}", params={"at_version": 2}).json()
    assert second["status"] == "RUNNING"
    assert second["version"] == 2
    assert_problem(api.get(f"/api/tasks/{task.id}", params={"at_version": 99}), 422)
    assert_problem(api.get(f"/api/tasks/{task.id}", params={"at_version": "x"}), 422)


def test_the_task_list_pages_with_a_keyset_cursor(api: httpx.Client, server: Server) -> None:
    kind = f"test.page.{uuid.uuid4().hex[:6]}"
    made = [server.writer.submit(kind=kind) for _ in range(5)]
    wait_for_view(api, server)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"kind": kind, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/tasks", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(t.id) for t in reversed(made)]


def test_cancelling_answers_by_status(api: httpx.Client, server: Server) -> None:
    writer = server.writer
    pending = writer.submit()
    response = api.post(f"/api/tasks/{pending.id}/cancel")
    assert (response.status_code, response.json()["outcome"]) == (200, "cancelled")
    again = api.post(f"/api/tasks/{pending.id}/cancel")
    assert (again.status_code, again.json()["outcome"]) == (200, "already_cancelled")
    running = writer.start(writer.submit())
    requested = api.post(f"/api/tasks/{running.id}/cancel")
    assert (requested.status_code, requested.json()["outcome"]) == (202, "requested")
    repeat = api.post(f"/api/tasks/{running.id}/cancel")
    assert (repeat.status_code, repeat.json()["outcome"]) == (200, "already_requested")
    finished = writer.finished_run()
    assert_problem(api.post(f"/api/tasks/{finished.id}/cancel"), 409)


def test_a_result_before_completion_is_a_conflict(api: httpx.Client, server: Server) -> None:
    running = server.writer.start(server.writer.submit())
    assert_problem(api.get(f"/api/tasks/{running.id}/result"), 409)


@pytest.mark.parametrize(
    "path",
    [
        "/api/tasks/{id}",
        "/api/tasks/{id}/events",
        "/api/tasks/{id}/result",
        "/api/tasks/{id}/stream",
        "/api/tasks/not-a-uuid",
    ],
)
def test_unknown_tasks_are_not_found(api: httpx.Client, path: str) -> None:
    assert_problem(api.get(path.format(id=uuid.uuid4())), 404)


def test_commands_on_unknown_tasks_are_not_found(api: httpx.Client) -> None:
    assert_problem(api.post(f"/api/tasks/{uuid.uuid4()}/cancel"), 404)
    assert_problem(api.post(f"/api/tasks/{uuid.uuid4()}/rerun"), 404)


def test_a_garbled_cursor_is_a_bad_request(api: httpx.Client) -> None:
    assert_problem(api.get("/api/tasks", params={"cursor": "%%%not-ours"}), 400)
    assert_problem(api.get("/api/tasks", params={"cursor": "bm90IGpzb24"}), 400)


def test_bad_filters_are_unprocessable(api: httpx.Client) -> None:
    body = assert_problem(api.get("/api/tasks", params={"status": "SLEEPING"}), 422)
    assert body["errors"][0]["field"] == "status"
    assert_problem(api.get("/api/tasks", params={"limit": "0"}), 422)
    assert_problem(api.get("/api/tasks", params={"limit": "9999"}), 422)


def test_malformed_json_is_a_bad_request(api: httpx.Client) -> None:
    response = api.post(
        "/api/tasks", content=b'{"kind": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)
    assert_problem(
        api.post("/api/tasks", content=b"", headers={"content-type": "application/json"}), 400
    )


def test_a_body_that_breaks_the_schema_names_its_fields(api: httpx.Client) -> None:
    body = assert_problem(api.post("/api/tasks", json={"parameters": [], "extra": 1}), 422)
    fields = {e["field"] for e in body["errors"]}
    assert {"kind", "parameters", "extra"} <= fields


def test_an_unknown_kind_is_unprocessable(api: httpx.Client) -> None:
    body = assert_problem(api.post("/api/tasks", json={"kind": "no.such.kind"}), 422)
    assert body["errors"][0]["field"] == "kind"


def test_a_body_that_is_not_json_is_unsupported(api: httpx.Client) -> None:
    assert_problem(api.post("/api/tasks", content=b"kind=x"), 415)
    assert_problem(
        api.post("/api/tasks", content=b"{}", headers={"content-type": "text/plain"}), 415
    )


def test_an_oversized_body_is_refused_with_content_length(api: httpx.Client) -> None:
    big = b'{"kind": "' + b"x" * (70 * 1024) + b'"}'
    response = api.post("/api/tasks", content=big, headers={"content-type": "application/json"})
    assert_problem(response, 413)


def test_an_oversized_chunked_body_is_refused(api: httpx.Client) -> None:
    def chunks() -> Any:
        yield b'{"kind": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    response = api.post(
        "/api/tasks", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


def test_a_body_longer_than_its_content_length_is_refused(server: Server) -> None:
    # A lying Content-Length: the server must not read past it as if it were the body.
    body = b'{"kind": "' + b"x" * 200 + b'"}'
    request = (
        b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 12\r\nConnection: close\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", server.process.port or 0), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), status_line


def test_a_wrong_method_is_405_with_allow(api: httpx.Client) -> None:
    response = api.delete("/api/tasks")
    assert_problem(response, 405)
    assert "POST" in response.headers["allow"]
    assert "GET" in response.headers["allow"]


def test_unknown_routes_are_problem_404s(api: httpx.Client) -> None:
    assert_problem(api.get("/api/no-such-thing"), 404)


def test_session_says_no_token_is_needed(api: httpx.Client) -> None:
    assert api.get("/api/session").json() == {"auth_required": False, "signed_in": True}


def test_admin_projections_report_position_head_and_lag(api: httpx.Client) -> None:
    projections = api.get("/api/admin/projections").json()["projections"]
    assert {"task_view", "strategy_view"} <= {p["name"] for p in projections}
    assert all(p["lag"] == p["head"] - p["position"] for p in projections)
