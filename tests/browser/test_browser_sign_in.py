"""Token mode: a server with an API token shows a sign-in form; the right token signs in
(an HttpOnly cookie the page cannot read) and the page then works, live stream included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import Server, serve, wait_indicator

pytestmark = pytest.mark.browser
TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    running = serve(tmp_path_factory.mktemp("serve"), api_token=TOKEN)
    try:
        yield running
    finally:
        running.stop()


def test_with_a_token_set_the_page_asks_to_sign_in_and_then_works(
    page: Any, server: Server
) -> None:
    page.goto(server.url + "/")
    form = page.locator("#sign-in-form")
    form.wait_for()
    assert page.locator(".strategy").count() == 0

    form.get_by_label("API token").fill("wrong")
    form.get_by_role("button", name="Sign in").click()
    error = form.locator(".field-error")
    error.wait_for()
    assert "not right" in error.inner_text()

    form.get_by_label("API token").fill(TOKEN)
    form.get_by_role("button", name="Sign in").click()
    page.locator(".strategy").first.wait_for()
    assert form.is_hidden()
    wait_indicator(page, ("live",))
    assert page.evaluate("document.cookie") == "", "the session cookie must be HttpOnly"

    page.reload()
    page.locator(".strategy").first.wait_for()
    assert page.locator("#sign-in-form").is_hidden()
