"""Real processes for tests and benchmarks: tasktrail serve/worker, nginx, a PostgreSQL cluster.

Every process gets its own log file, its own session (so kill -9 reaches it and nothing it
spawned) and bounded waits; a wait that times out raises with the tail of the log, so a
failure says why. Tests import it as ``from support.processes import ...`` (tests/ is on
sys.path through tests/conftest.py); benchmarks put tests/ on sys.path first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
NGINX_DIR = REPO / "nginx"
STATIC_ROOT = REPO / "tasktrail" / "http" / "static"
NGINX_BINARY = shutil.which("nginx") or "/usr/sbin/nginx"
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


class ProcessError(RuntimeError):
    """A process did not start, died early or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``predicate`` until it holds; raise ProcessError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise ProcessError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    """The running processes whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and fields[1] == str(pid) and fields[0] != "Z":
                children.append(int(entry.name))
    return children


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@dataclass
class Process:
    """One child process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill9(self) -> None:
        """kill -9 the process and its session: no clean-up code runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then kill -9 after ``timeout`` seconds."""
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def rss_bytes(self) -> int:
        """Resident set size from /proc (0 once the process is gone)."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def require_alive(self) -> None:
        if not self.alive():
            raise ProcessError(
                f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
            )

    def wait_for_port(self, timeout: float = 30.0) -> None:
        assert self.port is not None, f"{self.name} has no port"

        def ready() -> bool:
            self.require_alive()
            return port_open(self.port or 0)

        try:
            wait_until(ready, timeout, f"{self.name} to listen on {self.port}")
        except ProcessError as error:
            raise ProcessError(f"{error}\n{self.log_tail()}") from None

    def wait_for_http(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Wait until GET ``path`` on this process answers below 500."""
        url = f"http://127.0.0.1:{self.port}{path}"

        def ready() -> bool:
            self.require_alive()
            try:
                return httpx.get(url, timeout=2.0).status_code < 500
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, timeout, f"{self.name} to answer {url}", interval=0.1)
        except ProcessError as error:
            raise ProcessError(f"{error}\n{self.log_tail()}") from None


def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start ``argv`` in its own session with stdout+stderr appended to ``log_dir/name.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    merged = {**os.environ, **(env or {})}
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=merged,
            cwd=str(cwd or log_dir),
            start_new_session=True,
        )
    return Process(name=name, popen=popen, log_path=log_path, port=port)


def tasktrail_env(database_url: str, **settings: object) -> dict[str, str]:
    """TASKTRAIL_* variables for a child: the database plus any Settings field given."""
    env = {"TASKTRAIL_DATABASE_URL": database_url, "TASKTRAIL_SEED_EXAMPLES": "false"}
    for key, value in settings.items():
        env[f"TASKTRAIL_{key.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else (str(value))
        )
    return env


def start_serve(
    name: str,
    database_url: str,
    log_dir: Path,
    *,
    port: int | None = None,
    workers: int | None = None,
    settings: Mapping[str, object] | None = None,
    wait: bool = True,
) -> Process:
    """``tasktrail serve`` on 127.0.0.1; ``workers=None`` means ``--no-workers``."""
    port = port or free_port()
    argv = [sys.executable, "-m", "tasktrail", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    argv += ["--no-workers"] if workers is None else ["--workers", str(workers)]
    env = tasktrail_env(database_url, **(settings or {}))
    process = spawn(name, argv, log_dir, env=env, port=port)
    if wait:
        process.wait_for_http("/healthz", timeout=60)
    return process


def start_worker(
    name: str,
    database_url: str,
    log_dir: Path,
    *,
    concurrency: int = 4,
    settings: Mapping[str, object] | None = None,
    supervised_by: int | None = None,
) -> Process:
    """``tasktrail worker --concurrency N`` against ``database_url``; with ``supervised_by``,
    as serve starts its worker processes (no projector; it stops when that pid is gone)."""
    argv = [sys.executable, "-m", "tasktrail", "worker", "--concurrency", str(concurrency)]
    if supervised_by is not None:
        argv += ["--supervised-by", str(supervised_by)]
    env = tasktrail_env(database_url, **(settings or {}))
    process = spawn(name, argv, log_dir, env=env)
    time.sleep(0.2)
    process.require_alive()
    return process


# -- nginx ------------------------------------------------------------------------------


def nginx_available() -> bool:
    return Path(NGINX_BINARY).exists()


def upstream_lines(ports: Sequence[int], parameters: str = "max_fails=1 fail_timeout=2s") -> str:
    return "\n".join(f"        server 127.0.0.1:{p} {parameters};" for p in ports)


def render_nginx(
    prefix: Path,
    port: int,
    upstream_ports: Sequence[int],
    *,
    server_parameters: str = "max_fails=1 fail_timeout=2s",
) -> Path:
    """Lay out an nginx prefix from nginx/nginx.conf.template and the shipped locations."""
    conf_dir = prefix / "conf"
    (conf_dir / "snippets").mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "tmp"):
        (prefix / sub).mkdir(exist_ok=True)
    shutil.copy(NGINX_DIR / "tasktrail-locations.conf", conf_dir / "snippets")
    mime = Path("/etc/nginx/mime.types")
    if mime.exists():
        shutil.copy(mime, conf_dir / "mime.types")
    else:
        (conf_dir / "mime.types").write_text(
            "types { text/html html; text/css css; application/javascript js; }\n"
        )
    text = (NGINX_DIR / "nginx.conf.template").read_text()
    for key, value in {
        "@PREFIX@": str(prefix),
        "@PORT@": str(port),
        "@UPSTREAM@": upstream_lines(upstream_ports, server_parameters),
        "@STATIC_ROOT@": str(STATIC_ROOT),
    }.items():
        text = text.replace(key, value)
    if os.geteuid() == 0:
        # nginx started by root runs its workers as nobody, who cannot enter pytest's
        # private temp dirs (request bodies are buffered there): keep them as root.
        text = "user root;\n" + text
    conf = conf_dir / "nginx.conf"
    conf.write_text(text)
    return conf


def nginx_argv(prefix: Path, conf: Path, *extra: str) -> list[str]:
    return [NGINX_BINARY, "-p", str(prefix), "-c", str(conf), "-e", "stderr", *extra]


def nginx_test(prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on a config, run as this (possibly unprivileged) user."""
    argv = nginx_argv(prefix, conf, "-t")
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def start_nginx(
    prefix: Path,
    upstream_ports: Sequence[int],
    *,
    port: int | None = None,
    server_parameters: str = "max_fails=1 fail_timeout=2s",
) -> Process:
    """nginx in the foreground with its own prefix and a high loopback port."""
    port = port or free_port()
    conf = render_nginx(prefix, port, upstream_ports, server_parameters=server_parameters)
    checked = nginx_test(prefix, conf)
    if checked.returncode != 0:
        raise ProcessError(f"nginx -t failed:\n{checked.stderr}")
    argv = nginx_argv(prefix, conf, "-g", "daemon off;")
    process = spawn("nginx", argv, prefix / "logs", port=port)
    process.wait_for_port(timeout=20)
    return process


# -- a throwaway PostgreSQL cluster -----------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the postgres user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster in a temp dir, for tests that stop and start the server.

    The shared cluster other tests use is never touched.
    """

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        done = subprocess.run(
            _as_postgres(list(argv)), capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            raise ProcessError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -h 127.0.0.1"
        options += " -c fsync=off -c max_connections=200"
        self._run(
            str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "postgres.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway cluster in its own temp dir, stopped and removed on the way out.

    The dir is not under pytest's tmp_path: that one is private to root, and the server runs
    as the postgres user.
    """
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="tasktrail-pg-")))
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(ProcessError):
                cluster.stop("immediate")
        shutil.rmtree(cluster.directory, ignore_errors=True)


@dataclass
class Fleet:
    """Processes started by one test, stopped together (in reverse order) at the end."""

    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def add(self, process: Process) -> Process:
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=5)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log_tail(20)}" for p in self.processes)


@contextlib.contextmanager
def fleet(log_dir: Path) -> Iterator[Fleet]:
    group = Fleet(log_dir)
    try:
        yield group
    finally:
        group.stop_all()


# -- which process holds a PostgreSQL connection ------------------------------------------


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError, PermissionError):
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    return inodes


def _inodes_by_local_port(port: int) -> set[str]:
    """Inodes of loopback TCP sockets whose local port is ``port`` (from /proc/net/tcp*)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                columns = line.split()
                local_port = int(columns[1].rsplit(":", 1)[1], 16)
                if local_port == port:
                    found.add(columns[9])
    return found


def owner_of_client_port(client_port: int, processes: Sequence[Process]) -> Process | None:
    """The process among ``processes`` whose socket has local port ``client_port``.

    Maps a row of pg_stat_activity (client_port) to the OS process that opened it, so a
    test can find, say, which node holds the projector's advisory lock without asking the
    app.
    """
    inodes = _inodes_by_local_port(client_port)
    for process in processes:
        if process.alive() and inodes & _socket_inodes(process.pid):
            return process
    return None


def upstreams_of(nginx_prefix: Path, path: str) -> list[str]:
    """From nginx's access log: the upstream(s) that served each finished request for ``path``.

    Each entry is ``$upstream_addr``: "127.0.0.1:P" or, after a fail-over, "A, B".
    """
    log = nginx_prefix / "logs" / "access.log"
    served: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for line in log.read_text().splitlines():
            request = line.split('"')[1] if line.count('"') >= 2 else ""
            if " " in request and request.split(" ")[1].startswith(path):
                served.append(line.rsplit("upstream=", 1)[1].split(" rt=")[0])
    return served
