"""``tasktrail worker``: a worker process (scale-out: run K of them against one PostgreSQL).

It runs the outbox follower (to wake on new tasks and hear cancel requests), the projector
(safe beside others: projectors serialise on their position rows and skip what is applied),
the reaper (one active at a time by advisory lock) and ``--concurrency`` worker threads.

``--supervised-by PID`` (set by ``serve --worker-processes``, hidden): the process is a child
of that serve, which projects; it runs no projector and stops when its parent is gone.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

import click

from tasktrail import bootstrap

PARENT_CHECK_SECONDS = 1.0


@click.command()
@click.option("--concurrency", type=int, default=None, help="Worker threads (default: workers).")
@click.option("--supervised-by", type=int, default=None, hidden=True)
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, supervised_by: int | None) -> None:
    """Run tasks until SIGINT or SIGTERM."""
    from tasktrail.cli import configure_logging, settings_from

    settings = settings_from(ctx, workers=concurrency)
    configure_logging(settings)
    container = bootstrap.build(settings)
    runtime = bootstrap.build_runtime(
        container, workers=max(1, settings.workers), project=supervised_by is None
    )
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runtime.start()
    backend = "PostgreSQL" if settings.is_postgres else "SQLite"
    click.echo(f"worker running {max(1, settings.workers)} threads on {backend}")
    try:
        while not stopping.wait(PARENT_CHECK_SECONDS):
            if supervised_by is not None and os.getppid() != supervised_by:
                click.echo(f"worker's parent {supervised_by} is gone; stopping", err=True)
                break
    finally:
        runtime.stop()
        container.close()
        click.echo("worker stopped")
