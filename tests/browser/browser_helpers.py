"""What the browser tests read from the page and ask the API, shared by the modules."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from support.processes import Process, start_serve

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# Each batch of the sample universe waits this long, so a run lasts a few seconds.
BATCH_DELAY_SECONDS = 0.08


@dataclass
class Server:
    """A running ``tasktrail serve`` and an HTTP client for its API."""

    process: Process
    database_url: str
    log_dir: Path
    settings: dict[str, object]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        assert self.process.port is not None
        return self.process.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10.0, **kwargs)

    def json(self, path: str) -> Any:
        response = self.api("GET", path)
        response.raise_for_status()
        return response.json()

    def strategy_id(self, name: str) -> str:
        for strategy in self.json("/api/strategies")["items"]:
            if strategy["name"] == name:
                return str(strategy["id"])
        raise AssertionError(f"no strategy named {name!r}")

    def kill9(self) -> None:
        self.process.kill9()

    def restart(self) -> None:
        """Start the server again on the same port and database."""
        self.process = start_serve(
            "serve-again",
            self.database_url,
            self.log_dir,
            port=self.port,
            workers=2,
            settings=self.settings,
        )

    def stop(self) -> None:
        self.process.stop()


def serve(tmp: Path, **extra: object) -> Server:
    settings: dict[str, object] = {
        "seed_examples": True,
        "universe_batch_delay_seconds": BATCH_DELAY_SECONDS,
        "csv_root": str(tmp),
        **extra,
    }
    database_url = f"sqlite:///{tmp / 'tasktrail.db'}"
    process = start_serve("serve", database_url, tmp, workers=2, settings=settings)
    headers = {"Authorization": f"Bearer {extra['api_token']}"} if "api_token" in extra else {}
    return Server(process, database_url, tmp, settings, headers)


class RequestLog:
    """Every URL a page asked for."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def foreign(self, origin: str) -> list[str]:
        """URLs outside ``origin`` (data: and blob: URLs never leave the page)."""
        return [
            url
            for url in self.urls
            if urlsplit(url).scheme not in ("data", "blob")
            and f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" != origin
        ]


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/browser/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
RUN_STATE_JS = """() => {
  const card = document.querySelector(".run-card");
  if (!card) return null;
  const fact = (name) => card.querySelector(`dd[data-fact="${name}"]`)?.textContent ?? null;
  const bar = card.querySelector("[role=progressbar]");
  return {
    status: card.querySelector("h2 .badge")?.dataset.status ?? null,
    percent: bar ? Number(bar.getAttribute("aria-valuenow")) : null,
    phase: fact("phase"),
    done: fact("done"),
    message: fact("message"),
  };
}"""


def run_state(page: Any) -> dict[str, Any] | None:
    """Status, percent, phase, done and message as a run's page shows them (one read)."""
    state: dict[str, Any] | None = page.evaluate(RUN_STATE_JS)
    return state


def watch_run(page: Any, until: tuple[str, ...] = TERMINAL, timeout: float = 60.0) -> list[Any]:
    """Sample the run's page every 50 ms until its status is one of ``until``."""
    samples: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run_state(page)
        if state is not None:
            samples.append(state)
            if state["status"] in until:
                return samples
        page.wait_for_timeout(50)
    raise AssertionError(f"the run never reached {until}; last seen {samples[-1:]}")


def wait_running(page: Any, min_percent: int = 1, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the run's page shows it RUNNING at ``min_percent`` or more."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = run_state(page)
        if state and state["status"] == "RUNNING" and (state["percent"] or 0) >= min_percent:
            return state
        if state and state["status"] in TERMINAL:
            break
        page.wait_for_timeout(50)
    raise AssertionError(f"the run was not seen running; last seen {state}")


def execute(server: Server, strategy: str) -> str:
    """Start a run of the strategy named ``strategy`` through the API; its task id."""
    response = server.api("POST", f"/api/strategies/{server.strategy_id(strategy)}/execute")
    assert response.status_code == 202, response.text
    return str(response.json()["task_id"])


def wait_finished(server: Server, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll the API until the task is terminal; its TaskResponse."""
    deadline = time.monotonic() + timeout
    task: dict[str, Any] = {}
    while time.monotonic() < deadline:
        task = server.json(f"/api/tasks/{task_id}")
        if task["status"] in TERMINAL:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish: {task.get('status')}")


def timeline_versions(page: Any) -> list[int]:
    versions: list[int] = page.eval_on_selector_all(
        "ol.timeline li", "items => items.map(i => Number(i.dataset.version))"
    )
    return versions


def api_events(server: Server, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = server.json(f"/api/tasks/{task_id}/events")["events"]
    return events


def indicator_state(page: Any) -> str:
    return str(page.get_attribute("#connection", "data-state"))


def wait_indicator(page: Any, states: tuple[str, ...], timeout: float = 30.0) -> str:
    """Wait until the connection indicator shows one of ``states``; the one it showed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = indicator_state(page)
        if state in states:
            return state
        page.wait_for_timeout(50)
    raise AssertionError(f"the indicator never showed {states}; it shows {indicator_state(page)}")
