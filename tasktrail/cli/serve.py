"""``tasktrail serve``: the HTTP app, the outbox follower, the projections and a worker pool.

One process on the embedded SQLite default: the database is created and migrated on first
start, example strategies are seeded, and ``http://127.0.0.1:8000/`` answers. SIGINT/SIGTERM
stop it within a few seconds, open SSE streams included (sse-starlette ends them when uvicorn
starts shutting down; ``timeout_graceful_shutdown`` is the backstop). With
``--worker-processes K`` the workers run in K supervised children instead of threads here
(``worker_processes.py``).
"""

from __future__ import annotations

import ipaddress

import click
import uvicorn

from tasktrail import bootstrap
from tasktrail.cli.worker_processes import WorkerProcesses
from tasktrail.engine.leases import fail_runs_of_exited_process
from tasktrail.errors import ConfigurationError
from tasktrail.http.app import create_app
from tasktrail.settings import Settings

GRACEFUL_SHUTDOWN_SECONDS = 3


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to listen beyond this machine without an API token."""
    if not is_loopback(settings.host) and not settings.api_token:
        raise ConfigurationError(
            f"refusing to listen on {settings.host} without an API token: "
            "set TASKTRAIL_API_TOKEN (or --api-token), or bind 127.0.0.1"
        )


def server_for(settings: Settings, *, workers: bool = True) -> uvicorn.Server:
    """A uvicorn server running the whole process (not started)."""
    check_bind(settings)
    container = bootstrap.build(settings)
    children = bool(workers and settings.worker_processes)
    threads = settings.workers if workers and not children else 0
    runtime = bootstrap.build_runtime(container, workers=threads)
    if children:
        reaper = bootstrap.build_reaper(container)
        processes = WorkerProcesses(
            settings, on_exit=lambda pid: fail_runs_of_exited_process(reaper, pid)
        )
        # Started after the rest of start-up, stopped before the rest of shut-down.
        runtime.starters.append(processes.start)
        runtime.stoppers.append(processes.stop)
    app = create_app(container, runtime)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        lifespan="on",
        # httptools parses and frames in C: 2,000 streams get ~7 % more events through
        # than with h11 (benchmarks/sse_fanout.py). uvloop is left out on purpose: with it
        # the same fan-out fed a third of the events (docs/design.md).
        http="httptools",
        loop="asyncio",
        proxy_headers=False,
        server_header=False,
    )
    return uvicorn.Server(config)


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option(
    "--workers", type=int, default=None, help="Worker threads (per worker process, if any)."
)
@click.option(
    "--worker-processes",
    type=int,
    default=None,
    help="Run the workers in this many supervised child processes instead of threads here.",
)
@click.option("--no-workers", is_flag=True, help="Run no workers (scale-out: API only).")
@click.option("--api-token", default=None, help="Token every /api call needs.")
@click.option("--admin-token", default=None, help="Token admin endpoints need.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    worker_processes: int | None,
    no_workers: bool,
    api_token: str | None,
    admin_token: str | None,
) -> None:
    """Serve the API, the SSE streams and the web page; run the workers too."""
    from tasktrail.cli import configure_logging, settings_from

    settings = settings_from(
        ctx,
        host=host,
        port=port,
        workers=workers,
        worker_processes=worker_processes,
        api_token=api_token,
        admin_token=admin_token,
    )
    configure_logging(settings)
    server = server_for(settings, workers=not no_workers)
    click.echo(f"tasktrail serving http://{settings.host}:{settings.port}/")
    server.run()
