"""The page in a real Chromium against a real server: running, cancelling, failing, reloading,
the result table, the audit timeline, the create form, phone width, own origin only."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from browser_helpers import (
    RequestLog,
    Server,
    api_events,
    execute,
    run_state,
    screenshot,
    timeline_versions,
    wait_finished,
    wait_indicator,
    wait_running,
    watch_run,
)

pytestmark = pytest.mark.browser


def open_run_from_home(page: Any, server: Server, strategy: str) -> str:
    """Press Run on ``strategy`` on the home page, then follow the run; its task id."""
    page.goto(server.url + "/")
    page.get_by_role("button", name=f"Run {strategy}").click()
    page.get_by_role("link", name="Follow it").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]+$"))
    return str(page.url.rsplit("/", 1)[1])


def never_falls(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


def test_running_an_example_strategy_shows_progress_rising_through_both_phases_then_the_result(
    page: Any, server: Server
) -> None:
    task_id = open_run_from_home(page, server, "Momentum")
    samples = watch_run(page)
    final = samples[-1]

    running = [s for s in samples if s["status"] == "RUNNING"]
    fetching = [s["percent"] for s in running if s["phase"] == "fetching"]
    assert never_falls(fetching), fetching
    assert len({p for p in fetching if 0 < p < 100}) >= 3, f"percent seen: {fetching}"
    phases = [s["phase"] for s in samples if s["phase"] in ("fetching", "filtering")]
    assert phases[0] == "fetching"
    assert phases[-1] == "filtering"
    assert "fetching" not in phases[phases.index("filtering") :]
    assert final["status"] == "COMPLETED"
    assert final["percent"] == 100

    result = server.json(f"/api/tasks/{task_id}/result")
    table = page.get_by_role("table", name="Result")
    table.wait_for()
    headers = table.locator("thead th").all_inner_texts()
    assert [h.strip() for h in headers] == result["columns"]
    first_cells = table.locator("tbody tr td:first-child").all_inner_texts()
    assert first_cells == [row[0] for row in result["rows"]]
    screenshot(page, "completed-run-with-result")


def test_the_result_table_sorts_by_a_column_from_the_keyboard(page: Any, server: Server) -> None:
    task_id = execute(server, "Value")
    wait_finished(server, task_id)
    result = server.json(f"/api/tasks/{task_id}/result")
    column = result["columns"].index("roe")
    page.goto(f"{server.url}/tasks/{task_id}")
    header = page.get_by_role("button", name=re.compile(r"^roe"))
    header.focus()
    page.keyboard.press("Enter")
    ascending = sorted(row[column] for row in result["rows"])
    cells = page.locator(f"table.result tbody td:nth-child({column + 1})").all_inner_texts()
    assert [float(c) for c in cells] == pytest.approx(ascending, abs=1e-3)
    assert page.locator("table.result th[aria-sort=ascending]").count() == 1
    page.keyboard.press("Enter")
    cells = page.locator(f"table.result tbody td:nth-child({column + 1})").all_inner_texts()
    assert [float(c) for c in cells] == pytest.approx(ascending[::-1], abs=1e-3)


def test_cancelling_a_running_run_ends_cancelled_with_its_last_progress_shown(
    page: Any, server: Server
) -> None:
    task_id = open_run_from_home(page, server, "Value")
    wait_running(page, min_percent=5)
    page.get_by_role("button", name="Cancel run").click()
    samples = watch_run(page)

    task = server.json(f"/api/tasks/{task_id}")
    assert task["status"] == "CANCELLED"
    shown = samples[-1]
    assert shown["status"] == "CANCELLED"
    progress = task["progress"]
    assert progress["current"] > 0
    assert shown["percent"] == progress["percent"]
    assert shown["done"] == f"{progress['current']} of {progress['total']}"
    assert page.get_by_role("button", name="Cancel run").count() == 0

    page.get_by_role("link", name="← Strategies and runs").click()
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    assert row.locator(".badge").inner_text() == "Cancelled"
    assert row.get_by_role("progressbar").get_attribute("aria-valuenow") == str(progress["percent"])


def test_a_run_over_a_csv_file_with_a_bad_line_shows_the_error(page: Any, server: Server) -> None:
    (server.log_dir / "bad.csv").write_text(
        "symbol,date,close\nAAA,2024-01-02,10.5\nAAA,2024-01-03,not-a-price\n"
    )
    created = server.api(
        "POST",
        "/api/strategies",
        json={
            "name": "Bad file",
            "universe": {"provider": "csv", "path": "bad.csv"},
            "conditions": [{"metric": "close", "operator": ">", "value": 1}],
        },
    )
    assert created.status_code == 201, created.text
    task_id = open_run_from_home(page, server, "Bad file")
    assert watch_run(page)[-1]["status"] == "FAILED"
    task = server.json(f"/api/tasks/{task_id}")
    alert = page.locator(".run-error [role=alert]")
    assert "line 3" in task["error"]["message"]
    assert task["error"]["message"] in alert.inner_text()


def test_reloading_in_the_middle_of_a_run_picks_up_the_live_progress(
    page: Any, server: Server
) -> None:
    task_id = execute(server, "Oversold")
    page.goto(f"{server.url}/tasks/{task_id}")
    before = wait_running(page, min_percent=5)
    page.reload()
    wait_indicator(page, ("live",))
    after = run_state(page)
    assert after is not None
    assert after["percent"] >= before["percent"]
    samples = watch_run(page)
    assert samples[-1]["status"] == "COMPLETED"
    percents = [s["percent"] for s in samples if s["phase"] == "fetching"]
    assert len(set(percents)) >= 2, "no live progress after the reload"
    assert timeline_versions(page) == [e["version"] for e in api_events(server, task_id)]


def test_stepping_through_the_timeline_shows_the_state_after_each_event(
    page: Any, server: Server
) -> None:
    task_id = execute(server, "Value")
    wait_finished(server, task_id)
    events = api_events(server, task_id)
    page.goto(f"{server.url}/tasks/{task_id}")
    page.locator(f'ol.timeline li[data-version="{events[-1]["version"]}"]').wait_for()
    assert timeline_versions(page) == [e["version"] for e in events]
    assert page.locator("ol.timeline li").evaluate_all(
        "items => items.map(i => i.dataset.type)"
    ) == [e["type"] for e in events]

    page.locator("ol.timeline li").first.click()
    page.keyboard.press("Home")
    for index, event in enumerate(events):
        if index:
            page.keyboard.press("ArrowDown")
        selected = page.locator('ol.timeline li[aria-selected="true"]')
        assert selected.get_attribute("data-version") == str(event["version"])
        assert selected.evaluate("e => e === document.activeElement")
        at = server.json(f"/api/tasks/{task_id}?at_version={event['version']}")
        panel = page.locator(".state-after")
        assert panel.locator("h3").inner_text().startswith(f"State after v{event['version']}")
        assert (
            panel.locator('dd[data-fact="status"] .badge').get_attribute("data-status")
            == (at["status"])
        )
        done = f"{at['progress']['current']} of {at['progress']['total']}"
        assert panel.locator('dd[data-fact="done"]').inner_text() == done
    page.locator('.state-after .check[data-check="agrees"]').wait_for()
    page.keyboard.press("Home")
    first = page.locator('ol.timeline li[aria-selected="true"]')
    assert first.get_attribute("data-version") == str(events[0]["version"])
    screenshot(page, "timeline")


def test_the_create_form_shows_a_server_validation_error_next_to_its_field(
    page: Any, server: Server
) -> None:
    page.goto(server.url + "/")
    page.get_by_role("button", name="New strategy").click()
    form = page.locator("#create-strategy")
    form.get_by_label("Stock universe").select_option("csv")
    form.get_by_label("Condition 1 metric").select_option("pe")
    form.get_by_label("Value").fill("12")
    form.get_by_role("button", name="Create strategy").click()

    name_error = form.locator('[data-field="name"] .field-error')
    name_error.wait_for()
    assert name_error.inner_text().strip() != ""
    assert form.get_by_label("Name", exact=True).get_attribute("aria-invalid") == "true"

    form.get_by_label("Name", exact=True).fill("Cheap from the browser")
    form.get_by_label("Stock universe").select_option("sample")
    form.get_by_role("button", name="Add condition").click()
    form.get_by_label("Condition 2 metric").select_option("roe")
    form.locator('[data-field="conditions.1.value"] input').fill("10")
    form.get_by_role("button", name="Create strategy").click()
    card = page.locator(".strategy", has_text="Cheap from the browser")
    card.wait_for()
    conditions = card.locator(".conditions li").all_inner_texts()
    created = next(
        s for s in server.json("/api/strategies")["items"] if s["name"] == "Cheap from the browser"
    )
    assert conditions == created["conditions_text"]
    assert [c["metric"] for c in created["conditions"]] == ["pe", "roe"]


def test_a_double_click_on_run_starts_one_run(page: Any, server: Server) -> None:
    strategy_id = server.strategy_id("Oversold")
    before = server.json(f"/api/tasks?strategy_id={strategy_id}&limit=100")["items"]
    page.goto(server.url + "/")
    page.get_by_role("button", name="Run Oversold").dblclick()
    page.get_by_role("link", name="Follow it").first.wait_for()
    page.wait_for_timeout(500)
    after = server.json(f"/api/tasks?strategy_id={strategy_id}&limit=100")["items"]
    assert len(after) == len(before) + 1


def test_the_runs_list_shows_a_new_run_live_and_filters_by_status(
    page: Any, server: Server
) -> None:
    page.goto(server.url + "/")
    wait_indicator(page, ("live",))
    task_id = execute(server, "Momentum")
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    row.wait_for()
    page.locator(f'tr[data-task-id="{task_id}"][data-status="RUNNING"]').wait_for()
    screenshot(page, "runs-list-during-a-run")
    page.locator('button[data-filter="RUNNING"]').click()
    page.locator('button[data-filter="RUNNING"][aria-pressed="true"]').wait_for()
    row.wait_for()
    # It leaves the RUNNING list when it completes.
    row.wait_for(state="detached")
    page.locator('button[data-filter="COMPLETED"]').click()
    page.locator(f'tr[data-task-id="{task_id}"]').wait_for()
    statuses = page.locator("table.runs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    )
    assert set(statuses) == {"COMPLETED"}
    assert "status=COMPLETED" in page.url


def test_the_page_fits_a_phone_screen_without_scrolling_sideways(
    phone_page: Any, server: Server
) -> None:
    task_id = execute(server, "Value")
    wait_finished(server, task_id)
    for path in ("/", f"/tasks/{task_id}"):
        phone_page.goto(server.url + path)
        phone_page.locator("main section").first.wait_for()
        wide = phone_page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 375, f"{path} is {wide} px wide"
    screenshot(phone_page, "phone-run")


def test_the_page_asks_nothing_of_any_host_but_its_own(
    page: Any, server: Server, requests_seen: RequestLog
) -> None:
    task_id = execute(server, "Value")
    wait_finished(server, task_id)
    page.goto(server.url + "/")
    page.locator(".strategy").first.wait_for()
    page.goto(f"{server.url}/tasks/{task_id}")
    page.get_by_role("table", name="Result").wait_for()
    assert any("/static/app.js" in url for url in requests_seen.urls)
    assert any("/api/stream" in url for url in requests_seen.urls)
    assert requests_seen.foreign(server.url) == []
