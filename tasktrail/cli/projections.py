"""``tasktrail projections``: status (position, head, lag) and rebuild (blue/green or in place)."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from tasktrail.bootstrap import Container, build, read_side_projections
from tasktrail.engine.locks import PROJECTOR_LOCK_KEY, holder
from tasktrail.errors import ValidationError
from tasktrail.projections.base import Projection
from tasktrail.projections.queries import projection_status
from tasktrail.projections.rebuild import Rebuild, RebuildReport


@click.group()
def projections() -> None:
    """Read-side projections."""


@projections.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each projection's position, the log's head and the lag in events."""
    from tasktrail.cli import settings_from

    container = build(settings_from(ctx))
    try:
        names = [p.name for p in read_side_projections()]
        states = projection_status(container.sql, container.store, names)
        active = holder(container.sql, PROJECTOR_LOCK_KEY)
    finally:
        container.close()
    in_process = container.settings.is_sqlite
    if as_json:
        leader = None if active is None else active.application_name
        click.echo(json.dumps({"projections": [s.as_json() for s in states], "active": leader}))
        return
    table = Table("projection", "position", "head", "lag")
    for state in states:
        table.add_row(state.name, str(state.position), str(state.head), str(state.lag))
    Console().print(table)
    if in_process:
        click.echo("active projector: the serving process (SQLite)")
    elif active is None:
        click.echo("active projector: none (no process holds the projector lock)")
    else:
        click.echo(f"active projector: {active.application_name} (backend {active.backend_pid})")


@projections.command()
@click.argument("name", required=False)
@click.option("--in-place", is_flag=True, help="Truncate the serving tables and replay.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def rebuild(ctx: click.Context, name: str | None, in_place: bool, batch_size: int) -> None:
    """Rebuild NAME (default: every projection) from position 0.

    Blue/green by default: reads keep coming from the old tables until an atomic swap.
    """
    from tasktrail.cli import settings_from

    container = build(settings_from(ctx))
    try:
        chosen = [p for p in read_side_projections() if name in (None, p.name)]
        if not chosen:
            known = ", ".join(p.name for p in read_side_projections())
            raise ValidationError(f"no projection named {name!r}; known: {known}", field="name")
        for projection in chosen:
            _print_report(_rebuild_one(container, projection, in_place, batch_size))
    finally:
        container.close()


class EventsPerSecond(ProgressColumn):
    """The replay rate, from rich's moving estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} events/s")


def _rebuild_one(
    container: Container, projection: Projection, in_place: bool, batch_size: int
) -> RebuildReport:
    with _progress_bar() as bar:
        task = bar.add_task(projection.name, total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        job = Rebuild(
            container.sql, container.store, projection, batch_size=batch_size, on_progress=show
        )
        return job.in_place() if in_place else job.blue_green()


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        EventsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


def _print_report(report: RebuildReport) -> None:
    click.echo(
        f"{report.name}: {report.events} events in {report.seconds:.2f} s "
        f"({report.events_per_second:,.0f} events/s), at position {report.position}"
    )
