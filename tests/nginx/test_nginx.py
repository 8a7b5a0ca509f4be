"""The shipped nginx config, checked by nginx itself and exercised in front of real nodes.

nginx runs unprivileged-style with its own prefix and a high loopback port (see
tests/support/processes.py); the serve node is a real ``tasktrail serve`` process.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support.processes import (
    NGINX_DIR,
    Process,
    free_port,
    nginx_available,
    nginx_test,
    start_nginx,
    start_serve,
)
from support.sse import SseComment, SseEvent, parse

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
]

# A PENDING sleep task: the node runs no workers, so it stays as submitted.
SUBMISSION = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}
WRAPPER = """
pid {prefix}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    include mime.types;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    access_log off;
    include sites-enabled/tasktrail;
}}
"""


def test_the_shipped_site_passes_nginx_t(tmp_path: Path) -> None:
    """The files laid out as the README installs them (site + snippet) pass ``nginx -t``."""
    conf_dir = tmp_path / "conf"
    (conf_dir / "snippets").mkdir(parents=True)
    (conf_dir / "sites-enabled").mkdir()
    (tmp_path / "tmp").mkdir()
    shutil.copy(NGINX_DIR / "tasktrail-locations.conf", conf_dir / "snippets")
    shutil.copy(NGINX_DIR / "tasktrail.conf", conf_dir / "sites-enabled" / "tasktrail")
    shutil.copy("/etc/nginx/mime.types", conf_dir / "mime.types")
    conf = conf_dir / "nginx.conf"
    conf.write_text(WRAPPER.format(prefix=tmp_path))

    checked = nginx_test(tmp_path, conf)

    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


# -- behaviour in front of a real node ----------------------------------------------------


@dataclass
class Site:
    nginx: Process
    node: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port}"

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.node.port}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """nginx in front of one ``tasktrail serve --no-workers`` on SQLite (tasks stay PENDING)."""
    base = tmp_path_factory.mktemp("nginx-site")
    database_url = f"sqlite:///{base / 'tasktrail.db'}"
    node = start_serve("serve", database_url, base / "logs")
    try:
        nginx = start_nginx(base / "nginx", [node.port or 0])
    except Exception:
        node.stop()
        raise
    try:
        yield Site(nginx=nginx, node=node)
    finally:
        nginx.stop()
        node.stop()


def submit_run(base_url: str, client: httpx.Client) -> str:
    answer = client.post(f"{base_url}/api/tasks", json=SUBMISSION)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def first_items(response: httpx.Response, stop: threading.Event) -> list[SseEvent | SseComment]:
    """Read items until the first event (or ``stop``)."""
    items: list[SseEvent | SseComment] = []
    for item in parse(response.iter_lines()):
        items.append(item)
        if isinstance(item, SseEvent) or stop.is_set():
            break
    return items


def test_an_event_passes_through_nginx_before_the_first_ping(site: Site) -> None:
    """Open the stream, then submit: the task's created event arrives before any ping.

    Pings come every 15 s; a buffering proxy would hold the event back until its buffer
    filled or the connection ended, so the first thing through would be a ping or nothing.
    """
    with httpx.Client(timeout=httpx.Timeout(10.0, read=40.0)) as client:
        head = client.get(f"{site.url}/api/tasks").json()["position"]
        with client.stream("GET", f"{site.url}/api/stream?after={head}") as stream:
            assert stream.status_code == 200
            opened = time.monotonic()
            task_id = submit_run(site.url, client)
            items = first_items(stream, threading.Event())
    events = [i for i in items if isinstance(i, SseEvent)]
    pings_before = [i for i in items if isinstance(i, SseComment) and "ping" in i.text]
    assert events, f"no event arrived: {items}"
    print(f"first event through nginx after {events[0].received_at - opened:.3f}s")
    assert events[0].event == "task.created"
    assert events[0].json()["task_id"] == task_id
    assert int(events[0].id or 0) > head
    assert pings_before == [], f"a ping came first, so the event was held back: {items}"


def test_event_streams_are_never_gzipped_though_json_is(site: Site) -> None:
    """With Accept-Encoding: gzip, JSON comes compressed and text/event-stream does not."""
    headers = {"Accept-Encoding": "gzip"}
    with httpx.Client(timeout=httpx.Timeout(10.0, read=5.0)) as client:
        document = client.get(f"{site.url}/api/openapi.json", headers=headers)
        with client.stream("GET", f"{site.url}/api/stream", headers=headers) as stream:
            stream_type = stream.headers.get("content-type", "")
            stream_encoding = stream.headers.get("content-encoding")
    assert document.status_code == 200
    assert document.headers.get("content-encoding") == "gzip", "gzip is not on at all"
    assert stream_type.startswith("text/event-stream")
    assert stream_encoding is None


def test_nginx_refuses_a_body_over_64_kib_with_a_problem(site: Site) -> None:
    """One byte over the app's 64 KiB limit is a 413 problem; exactly 64 KiB reaches the app."""
    limit = 64 * 1024
    padding = '{"kind": "tasktrail.sleep", "parameters": {}, "note": "'
    over = (padding + "a" * (limit + 1 - len(padding) - 2) + '"}').encode()
    at_limit = (padding + "a" * (limit - len(padding) - 2) + '"}').encode()
    assert (len(over), len(at_limit)) == (limit + 1, limit)
    headers = {"Content-Type": "application/json"}
    with httpx.Client(timeout=10.0) as client:
        refused = client.post(f"{site.url}/api/tasks", content=over, headers=headers)
        passed = client.post(f"{site.url}/api/tasks", content=at_limit, headers=headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["status"] == 413
    assert passed.status_code != 413, "nginx and the app disagree on the limit"
    assert passed.headers["content-type"].startswith(("application/json", "application/problem"))


# -- fail-over: GETs move on, POSTs are never sent twice ------------------------------------


@dataclass
class DyingNode:
    """A fake node that reads each request and hangs up without answering, like a node
    killed mid-request. Counts the requests it swallowed."""

    port: int = field(default_factory=free_port)
    requests: list[str] = field(default_factory=list)
    _server: socket.socket | None = None

    def start(self) -> DyingNode:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        self._server = server
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def _serve(self) -> None:
        while self._server is not None:
            try:
                connection, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            with connection:
                connection.settimeout(2.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.requests.append(data.split(b"\r\n", 1)[0].decode())


@pytest.fixture
def half_dead_site(tmp_path: Path, site: Site) -> Iterator[tuple[str, DyingNode]]:
    """A second nginx whose upstream is a dying node first, then the real node."""
    dying = DyingNode().start()
    # max_fails=0: never take the dying node out, so round robin keeps sending it requests.
    nginx = start_nginx(
        tmp_path / "nginx", [dying.port, site.node.port or 0], server_parameters="max_fails=0"
    )
    try:
        yield f"http://127.0.0.1:{nginx.port}", dying
    finally:
        nginx.stop()
        dying.stop()


def task_count(node_url: str, client: httpx.Client) -> int:
    counts = client.get(f"{node_url}/api/tasks").json()["counts"]
    return sum(int(n) for n in counts.values())


def test_a_post_that_reached_a_dying_node_is_not_retried_on_another(
    site: Site, half_dead_site: tuple[str, DyingNode]
) -> None:
    """Submissions that hit the dying node get 502 and run nowhere; GETs fail over."""
    url, dying = half_dead_site
    with httpx.Client(timeout=20.0) as client:
        before = task_count(site.node_url, client)
        responses = [client.post(f"{url}/api/tasks", json=SUBMISSION) for _ in range(6)]
        answers = [r.status_code for r in responses]
        reads = [client.get(f"{url}/api/tasks").status_code for _ in range(6)]
        after = task_count(site.node_url, client)
    posts_swallowed = [r for r in dying.requests if r.startswith("POST")]
    gets_swallowed = [r for r in dying.requests if r.startswith("GET")]
    print(f"POST answers {answers}; GET answers {reads}; dying node saw {dying.requests}")
    assert answers.count(502) >= 1, "the dying node got no submission: test proves nothing"
    assert set(answers) <= {202, 502}
    for gateway_error in (r for r in responses if r.status_code == 502):
        assert gateway_error.headers["content-type"] == "application/problem+json"
        assert "Idempotency-Key" in gateway_error.json()["detail"]
    assert len(posts_swallowed) == answers.count(502)
    assert after - before == answers.count(202), "a swallowed POST was replayed elsewhere"
    assert gets_swallowed, "no GET reached the dying node: fail-over untested"
    assert reads == [200] * 6


def test_static_files_are_served_by_nginx(site: Site) -> None:
    """Whatever the page ships under static/ comes back through nginx unchanged."""
    static = Path(__file__).resolve().parents[2] / "tasktrail" / "http" / "static"
    files = sorted(p for p in static.rglob("*") if p.is_file())
    if not files:
        pytest.skip("the page has no static files yet")
    sample = files[0]
    with httpx.Client(timeout=10.0) as client:
        answer = client.get(f"{site.url}/static/{sample.relative_to(static).as_posix()}")
    assert answer.status_code == 200
    assert answer.content == sample.read_bytes()  # httpx undoes any gzip
