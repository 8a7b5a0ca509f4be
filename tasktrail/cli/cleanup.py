"""``tasktrail cleanup``: archive, then remove, the tasks that ended more than N days ago."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from rich.progress import Progress

from tasktrail import bootstrap
from tasktrail.engine import retention
from tasktrail.projections import retention as view_retention

BATCH = 200


@click.command()
@click.option("--days", type=int, default=None, help="Keep tasks that ended in the last N days.")
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@click.option("--archive-dir", default=None, help="Where the archive file goes.")
@click.option("--now", "now_text", default=None, hidden=True, help="ISO time taken as now.")
@click.pass_context
def cleanup(
    ctx: click.Context,
    days: int | None,
    dry_run: bool,
    archive_dir: str | None,
    now_text: str | None,
) -> None:
    """Remove tasks that ended more than --days ago (never PENDING or RUNNING ones)."""
    from tasktrail.cli import settings_from

    settings = settings_from(ctx, retention_days=days, archive_dir=archive_dir)
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    cutoff = now - timedelta(days=settings.retention_days)
    container = bootstrap.build(settings, upgrade=False)
    try:
        expired = view_retention.expired_tasks(container.sql, cutoff)
        click.echo(f"{len(expired)} tasks ended before {cutoff.isoformat()}")
        if dry_run:
            for task_id in expired:
                click.echo(task_id)
            return
        if not expired:
            return
        started = time.perf_counter()
        ids = [uuid.UUID(t) for t in expired]
        path, archived = retention.write_archive(container.store, Path(settings.archive_dir), ids)
        click.echo(f"archive: {path} ({archived} events)")
        removed = 0
        with Progress() as progress:
            bar = progress.add_task("removing", total=len(ids))
            for start in range(0, len(ids), BATCH):
                chunk = ids[start : start + BATCH]
                removed += retention.delete_events(container.store, chunk)
                view_retention.remove_rows(container.sql, [str(i) for i in chunk])
                progress.advance(bar, len(chunk))
        seconds = time.perf_counter() - started
        rate = removed / seconds if seconds else 0.0
        click.echo(
            f"removed {len(ids)} tasks, {removed} events in {seconds:.2f} s ({rate:.0f} ev/s)"
        )
    finally:
        container.close()
