"""``tasktrail worker``: a worker process (scale-out: run K of them against one PostgreSQL).

It runs the outbox follower (to wake on new tasks and hear cancel requests), the projector
(safe beside others: projectors serialise on their position rows and skip what is applied),
the reaper (one active at a time by advisory lock) and ``--concurrency`` worker threads.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from tasktrail import bootstrap


@click.command()
@click.option("--concurrency", type=int, default=None, help="Worker threads (default: workers).")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None) -> None:
    """Run tasks until SIGINT or SIGTERM."""
    from tasktrail.cli import configure_logging, settings_from

    settings = settings_from(ctx, workers=concurrency)
    configure_logging(settings)
    container = bootstrap.build(settings)
    runtime = bootstrap.build_runtime(container, workers=max(1, settings.workers))
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    runtime.start()
    backend = "PostgreSQL" if settings.is_postgres else "SQLite"
    click.echo(f"worker running {max(1, settings.workers)} threads on {backend}")
    try:
        stopping.wait()
    finally:
        runtime.stop()
        container.close()
        click.echo("worker stopped")
