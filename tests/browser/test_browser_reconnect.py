"""The stream drops mid-run (kill -9 of the server, then a proxy answering 502 while it comes
back): the page shows the drop, backs off, resumes from its last position and ends with the
run's final state, no event twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_helpers import (
    Server,
    api_events,
    execute,
    serve,
    timeline_versions,
    wait_finished,
    wait_indicator,
    wait_running,
    watch_run,
)

pytestmark = pytest.mark.browser
BAD_GATEWAYS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """Slower batches than the other modules, so the run outlives the restart."""
    running = serve(tmp_path_factory.mktemp("serve"), universe_batch_delay_seconds=0.15)
    try:
        yield running
    finally:
        running.stop()


def test_a_server_restart_mid_run_shows_the_drop_then_recovers_with_the_final_state(
    page: Any, server: Server
) -> None:
    task_id = execute(server, "Momentum")
    page.goto(f"{server.url}/tasks/{task_id}")
    wait_indicator(page, ("live",))
    wait_running(page, min_percent=5)

    server.kill9()
    assert wait_indicator(page, ("reconnecting", "offline")) in ("reconnecting", "offline")
    assert page.locator("#connection").inner_text().startswith(("Reconnecting", "Offline"))
    held_position = int(page.get_attribute("#connection", "data-position") or 0)
    assert held_position > 0

    # While the server comes back, a proxy in front of it would answer 502.
    reopened: list[str] = []
    answered_502: list[str] = []

    def proxy(route: Any) -> None:
        reopened.append(route.request.url)
        if len(answered_502) < BAD_GATEWAYS:
            answered_502.append(route.request.url)
            route.fulfill(status=502, body="Bad Gateway", content_type="text/html")
        else:
            route.continue_()

    page.route(lambda url: urlsplit(url).path == "/api/stream", proxy)
    server.restart()
    wait_indicator(page, ("live",), timeout=60)

    task = wait_finished(server, task_id)
    shown = watch_run(page)[-1]
    assert shown["status"] == task["status"]
    assert shown["done"] == f"{task['progress']['current']} of {task['progress']['total']}"
    assert len(answered_502) == BAD_GATEWAYS
    afters = [int(parse_qs(urlsplit(url).query)["after"][0]) for url in reopened]
    assert afters[0] == held_position, "the page did not resume from its last position"
    assert afters == sorted(afters)

    versions = timeline_versions(page)
    assert len(versions) == len(set(versions)), "an event is in the timeline twice"
    assert versions == [e["version"] for e in api_events(server, task_id)]


def test_after_the_restart_the_same_tab_follows_a_new_run_live(page: Any, server: Server) -> None:
    page.goto(server.url + "/")
    wait_indicator(page, ("live",))
    task_id = execute(server, "Value")
    page.locator(f'tr[data-task-id="{task_id}"][data-status="COMPLETED"]').wait_for(timeout=60_000)
    rows = page.locator(f'tr[data-task-id="{task_id}"]')
    assert rows.count() == 1
