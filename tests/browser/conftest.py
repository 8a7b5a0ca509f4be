"""Browser tests: Playwright for Python driving Debian's Chromium against a real
``tasktrail serve`` subprocess on a free 127.0.0.1 port with a temporary SQLite database.

Without /usr/bin/chromium the tests skip with a message, except under CI=true, where they
fail. One browser per session, one server per module, a fresh context (cookies, storage)
per test. Every page records the URLs it requests; a request to any other origin fails the
test. Screenshots go to test-artifacts/ (gitignored).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import RequestLog, Server, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
WAIT_MS = 30_000


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"{message}; CI=true: browser tests must run")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole session."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """One server for the module (the browser first, so a missing Chromium skips early)."""
    running = serve(tmp_path_factory.mktemp("serve"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def requests_seen() -> RequestLog:
    return RequestLog()


@pytest.fixture
def page(browser: Any, server: Server, requests_seen: RequestLog) -> Iterator[Any]:
    """A fresh desktop-sized page that must stay on the server's own origin."""
    yield from open_page(browser, server, requests_seen)


@pytest.fixture
def phone_page(browser: Any, server: Server, requests_seen: RequestLog) -> Iterator[Any]:
    """A fresh page at a phone's width (375 px), on the server's own origin only."""
    yield from open_page(
        browser, server, requests_seen, viewport={"width": 375, "height": 800}, is_mobile=True
    )


def open_page(
    browser: Any, server: Server, log: RequestLog, **context_options: Any
) -> Iterator[Any]:
    context = browser.new_context(
        viewport=context_options.pop("viewport", {"width": 1280, "height": 900}),
        **context_options,
    )
    context.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page = context.new_page()
    page.on("request", lambda request: log.urls.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert log.foreign(server.url) == [], "the page asked another origin"
    assert errors == [], f"uncaught errors in the page: {errors}"
