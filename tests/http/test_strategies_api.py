"""Strategies over HTTP on both backends: list, get, create, execute, idempotency, rerun."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from test_api import assert_problem


def a_metric(api: httpx.Client) -> str:
    """A numeric metric from the catalog (compared with ``>``)."""
    assert api.get("/api/metrics/catalog").status_code == 200
    return "close"


def create(api: httpx.Client, metric: str) -> dict[str, Any]:
    body = {
        "name": f"s-{uuid.uuid4().hex[:6]}",
        "conditions": [{"metric": metric, "operator": ">", "value": 0}],
    }
    response = api.post("/api/strategies", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/strategies/{created['id']}"
    return created


def test_a_created_strategy_is_got_and_listed(api: httpx.Client) -> None:
    created = create(api, a_metric(api))
    shown = api.get(f"/api/strategies/{created['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["name"] == created["name"]
    assert api.get("/api/strategies").status_code == 200
    assert_problem(api.get(f"/api/strategies/{uuid.uuid4()}"), 404)


def test_an_unknown_metric_is_a_422_naming_the_field(api: httpx.Client) -> None:
    body = {
        "name": "bad",
        "conditions": [{"metric": "no_such_metric", "operator": ">", "value": 1}],
    }
    problem = assert_problem(api.post("/api/strategies", json=body), 422)
    assert [e["field"] for e in problem["errors"]] == ["conditions.0.metric"]


def test_execute_is_202_with_links_and_idempotency_key_repeats_the_task(api: httpx.Client) -> None:
    strategy = create(api, a_metric(api))
    url = f"/api/strategies/{strategy['id']}/execute"
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(url, headers=key)
    assert first.status_code == 202, first.text
    task_id = first.json()["task_id"]
    assert first.headers["location"] == f"/api/tasks/{task_id}"
    assert first.json()["links"]
    again = api.post(url, headers=key)
    assert again.status_code == 202
    assert again.json()["task_id"] == task_id
    other = create(api, a_metric(api))
    assert_problem(api.post(f"/api/strategies/{other['id']}/execute", headers=key), 409)
    assert api.post(url).json()["task_id"] != task_id


def test_a_rerun_is_a_new_task_linked_to_the_first(api: httpx.Client) -> None:
    strategy = create(api, a_metric(api))
    task_id = api.post(f"/api/strategies/{strategy['id']}/execute").json()["task_id"]
    rerun = api.post(f"/api/tasks/{task_id}/rerun")
    assert rerun.status_code == 202, rerun.text
    new_id = rerun.json()["task_id"]
    assert new_id != task_id
    shown = api.get(f"/api/tasks/{new_id}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["rerun_of"] == task_id
