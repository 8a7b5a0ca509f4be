"""Schemathesis over ``/api/openapi.json`` against a real server, on both backends.

Every operation is called with generated requests, valid ones and (where it takes any
input) invalid ones; each answer must not be a 5xx and must conform to the document: a
documented status code, its content type, its schema, and invalid input refused with a 4xx.
Path ids are drawn from tasks in every state and a strategy made beforehand as well as
generated, so the 200 answers are checked and not only the 404s. ``GET /api/stream`` never
ends when the request is valid, so it is only sent invalid input.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import schemathesis
from http_harness import Server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tasktrail.http.openapi import Operation
from tasktrail.http.routes import OPERATIONS

EXAMPLES = 30
# A stream accepted by mistake is read for this long, then judged.
STREAM_SECONDS = 0.5
ENDLESS = ("GET", "/api/stream")
CREATE_STRATEGY = ("POST", "/api/strategies")
CONDITION = {"metric": "close", "operator": ">", "value": 0}
# Where a request can match the schema and still be refused (422/400), because validity
# depends on the server's state rather than on a shape: kinds are registered at run time,
# metrics come from the catalog, a cursor must be one the server handed out, at_version must
# be one of the task's versions. Only the check "valid input is accepted" is left out there.
STATEFUL_VALIDITY = {
    ("POST", "/api/tasks"),
    ("POST", "/api/strategies"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/{task_id}"),
}


def takes_input(operation: Operation) -> bool:
    return bool(operation.params) or operation.body is not None


CASES = [
    pytest.param(operation, mode, id=f"{operation.method} {operation.path} {mode.value}")
    for operation in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if (mode is GenerationMode.POSITIVE and (operation.method, operation.path) != ENDLESS)
    or (mode is GenerationMode.NEGATIVE and takes_input(operation))
]


def seed_tasks(server: Server) -> list[str]:
    """A task in each state: pending, running, completed, failed, cancelled."""
    writer = server.writer
    pending = writer.submit("tasktrail.sleep", seconds=0)
    running = writer.start(writer.submit("tasktrail.sleep", seconds=0))
    failed = writer.start(writer.submit("tasktrail.sleep", seconds=0))
    failed.fail("ValueError", "it went wrong")
    writer.store.save(failed)
    cancelled = writer.submit("tasktrail.sleep", seconds=0)
    cancelled.cancel("schema-test")
    writer.store.save(cancelled)
    done = writer.finished_run(kind="tasktrail.sleep", seconds=0)
    return [str(t.id) for t in (pending, running, failed, cancelled, done)]


def seed_strategy(api: httpx.Client) -> str:
    body = {"name": "schema", "conditions": [CONDITION]}
    response = api.post("/api/strategies", json=body)
    assert response.status_code == 201, response.text
    strategy_id: str = response.json()["id"]
    return strategy_id


@pytest.fixture(scope="module")
def known_ids(server: Server) -> dict[str, list[str]]:
    with server.client() as api:
        return {"task_id": seed_tasks(server), "strategy_id": [seed_strategy(api)]}


@pytest.fixture(scope="module")
def api_schema(server: Server) -> Any:
    """The server's own document; its requests go to that server."""
    return schemathesis.openapi.from_url(f"{server.base_url}/api/openapi.json")


def cases(documented: Any, mode: GenerationMode, ids: dict[str, list[str]]) -> Any:
    """Generated cases, half of them (when valid) aimed at a task or strategy that exists."""
    generated = documented.as_strategy(generation_mode=mode)
    names = [name for name in ids if f"{{{name}}}" in documented.path]
    if mode is GenerationMode.NEGATIVE or not names:
        return generated
    existing = st.sampled_from(ids[names[0]]).flatmap(
        lambda value: documented.as_strategy(
            generation_mode=mode, path_parameters={names[0]: value}
        )
    )
    return st.one_of(existing, generated)


def number(condition: object) -> float:
    value = condition.get("value") if isinstance(condition, dict) else None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def with_catalog_metrics(case: schemathesis.Case[Any]) -> bool:
    """Point a generated strategy's conditions and sort at a real metric, so its other fields
    reach the store instead of stopping at "unknown metric"; True when the body was changed."""
    body = case.body
    if not isinstance(body, dict):
        return False
    conditions = body.get("conditions")
    if not isinstance(conditions, list):
        return False
    body["conditions"] = [
        {"metric": "close", "operator": ">", "value": number(c)} for c in conditions
    ]
    sort = body.get("sort")
    if isinstance(sort, dict):
        sort["metric"] = "close"
    body["universe"] = {"provider": "sample"}
    return True


# Parametrized from the list the document is built from, so a new operation is covered
# without editing this file (schemathesis.pytest.from_fixture breaks under pytest 9).
@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_every_operation_answers_as_documented(
    api_schema: Any, known_ids: dict[str, list[str]], operation: Operation, mode: GenerationMode
) -> None:
    documented = api_schema[operation.path][operation.method]
    key = (operation.method, operation.path)
    positive = mode is GenerationMode.POSITIVE
    excluded: list[schemathesis.CheckFunction] = (
        [positive_data_acceptance] if key in STATEFUL_VALIDITY else []
    )

    @given(case=cases(documented, mode, known_ids), real_metrics=st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    def call(case: schemathesis.Case[Any], real_metrics: bool) -> None:
        checks = excluded
        if real_metrics and positive and key == CREATE_STRATEGY and with_catalog_metrics(case):
            checks = []  # the body is valid in every respect now: it must be accepted
        case.call_and_validate(excluded_checks=checks, timeout=STREAM_SECONDS)

    call()


def test_the_projections_still_catch_up_after_the_generated_requests(server: Server) -> None:
    """Whatever the generated requests got accepted, the views can store (a NUL once could
    not be on PostgreSQL, and stopped the projector)."""
    head = server.writer.store.head()
    deadline = time.monotonic() + 15
    with server.client() as api:
        while time.monotonic() < deadline:
            projections = api.get("/api/admin/projections").json()["projections"]
            if projections and all(p["position"] >= head for p in projections):
                return
            time.sleep(0.1)
    raise AssertionError(f"projections stuck below {head}: {projections}")


NUL_REQUESTS = [
    ("POST", "/api/strategies", {"name": "a\x00", "conditions": [CONDITION]}, "name"),
    ("POST", "/api/tasks", {"kind": "tasktrail.sleep", "parameters": {"x": ["\x00"]}}, "x"),
    ("POST", "/api/tasks", {"kind": "tasktrail.sleep", "parameters": {"\x00": 1}}, "parameters"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), NUL_REQUESTS)
def test_a_nul_in_any_text_of_a_body_is_a_422(
    api: httpx.Client, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    """Found by the generated requests: PostgreSQL refused the NUL later, in the projector."""
    response = api.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert field in response.json()["errors"][0]["field"]


@pytest.mark.parametrize("name", ["kind", "strategy_id", "cursor"])
def test_a_nul_in_a_task_filter_is_a_422_not_a_500(api: httpx.Client, name: str) -> None:
    response = api.get("/api/tasks", params={name: "a\x00"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == name


def test_a_nul_in_a_strategy_id_names_no_strategy(api: httpx.Client) -> None:
    assert api.get("/api/strategies/a%00").status_code == 404


def test_a_digit_int_cannot_read_is_refused_not_a_500(api: httpx.Client) -> None:
    """ "²" passes str.isdigit() but not int(): found by the generated requests."""
    task = api.post("/api/tasks", json={"kind": "tasktrail.sleep", "parameters": {"seconds": 0}})
    task_url = f"/api/tasks/{task.json()['task_id']}"
    assert api.get(task_url, params={"at_version": "²"}).status_code == 422
    assert api.get("/api/stream", params={"after": "²"}).status_code == 400
    resumed = {"Last-Event-ID": "1"}
    assert api.get(f"{task_url}/stream", headers=resumed, params={"after": "x"}).status_code == 400
