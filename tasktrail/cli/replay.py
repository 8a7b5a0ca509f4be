"""``tasktrail replay`` and ``tasktrail audit``: a past run event by event, and its chain.

``replay TASK_ID`` prints each event (time, type, who, data) with the task's state after it,
then a verdict from the digest chain and the task view's anchor (the version it has seen).
``--follow`` keeps printing a live run's events as they are committed (see ``follow.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from tasktrail import bootstrap
from tasktrail.cli.follow import follow_steps
from tasktrail.engine import audit, digest, retention
from tasktrail.engine.history import Step, history_with_states, steps_of, task_state
from tasktrail.engine.service import TaskNotFoundError
from tasktrail.errors import ValidationError
from tasktrail.projections.queries import find_task, list_tasks
from tasktrail.settings import Settings


def parse_task_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationError(f"not a task id: {raw!r}", field="task_id") from None


def who(step: Step) -> str:
    data = step.data
    for key in ("worker_id", "submitted_by", "requested_by", "cancelled_by"):
        if data.get(key):
            return str(data[key])
    return ""


def state_summary(state: dict[str, Any]) -> str:
    progress = state["progress"]
    text = f"{state['status']} {progress['percent']}%"
    if progress["phase"]:
        text += f" {progress['phase']}"
    matched = (state["result_summary"] or {}).get("matched")
    if matched is not None:
        text += f" matched={matched}"
    if state["error"]:
        text += f" error={state['error']['type']}"
    return text


def checked_history(
    container: bootstrap.Container, task_id: uuid.UUID
) -> tuple[list[Step], list[audit.Finding]]:
    """The steps (none when a row cannot be decoded) and every finding about the chain,
    including events the task view saw that the log no longer has (a cut tail)."""
    if not container.store.positions_of(task_id):
        raise TaskNotFoundError(task_id)
    findings = audit.verify_task(container.store, task_id)
    undecodable = any(f.reason.startswith("undecodable") for f in findings)
    steps = [] if undecodable else history_with_states(container.service, task_id)
    view = find_task(container.sql, str(task_id))
    stored = max(v for v, _ in container.store.positions_of(task_id))
    if view is not None and int(view["version"]) > stored:
        findings.append(
            audit.Finding(
                task_id,
                None,
                stored + 1,
                "?",
                f"missing: the task view saw version {view['version']}, the log ends at {stored}",
            )
        )
    return steps, findings


def shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def step_time(step: Step) -> str:
    return datetime.fromisoformat(step.timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def step_line(step: Step) -> str:
    """One step on one line, for output that unfolds (--speed, --follow)."""
    data = shortened(json.dumps(step.data, default=str), 120)
    return (
        f"{step.position or '-':>6} v{step.version:<3} {step_time(step)} {step.topic:<22} "
        f"{who(step):<14} {state_summary(step.state):<28} {data}"
    )


def step_text(step: Step, *, as_json: bool) -> str:
    return json.dumps(step.as_json(), default=str) if as_json else step_line(step)


def echo_steps(steps: list[Step], *, as_json: bool, speed: float | None) -> None:
    """The steps as a table, as JSON lines, or (with ``speed``) unfolding in recorded time."""
    if speed:
        replay_timing(steps, speed, as_json=as_json)
    elif as_json:
        for step in steps:
            click.echo(step_text(step, as_json=True))
    else:
        print_table(Console(), steps)


def print_table(console: Console, steps: list[Step]) -> None:
    table = Table(title="events", show_lines=False)
    for column in ("pos", "v", "time", "type", "who", "data", "state after"):
        table.add_column(column, overflow="fold")
    for step in steps:
        table.add_row(
            str(step.position),
            str(step.version),
            step_time(step),
            step.topic,
            who(step),
            shortened(json.dumps(step.data, default=str), 200),
            state_summary(step.state),
        )
    console.print(table)


def replay_timing(steps: list[Step], speed: float, *, as_json: bool) -> None:
    """Print each step after the recorded gap since the previous one, ``speed`` times faster."""
    previous: datetime | None = None
    for step in steps:
        moment = datetime.fromisoformat(step.timestamp)
        if previous is not None:
            time.sleep(max(0.0, (moment - previous).total_seconds() / speed))
        previous = moment
        click.echo(step_text(step, as_json=as_json))


@click.command()
@click.argument("task_id", required=False)
@click.option("--at", "at_version", type=int, default=None, help="Print the state at VERSION.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON lines.")
@click.option("--verify", is_flag=True, help="Only verify the chain; exit 1 on any mismatch.")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Re-play the timing N times faster.",
)
@click.option("--follow", is_flag=True, help="Keep printing a live run's events until it ends.")
@click.option("--archive", "archive", default=None, help="Replay from an archive file.")
@click.option("--strategy", "strategy_id", default=None, help="List a strategy's runs instead.")
@click.option("--since", default=None, help="With --strategy: runs submitted since DATE.")
@click.pass_context
def replay(
    ctx: click.Context,
    task_id: str,
    at_version: int | None,
    as_json: bool,
    verify: bool,
    speed: float | None,
    follow: bool,
    archive: str | None,
    strategy_id: str | None,
    since: str | None,
) -> None:
    """Replay a past run event by event, with the state after each, then a verdict.

    With --strategy ID [--since DATE] it lists that strategy's runs and their outcomes.
    """
    from tasktrail.cli import settings_from

    if strategy_id is not None:
        list_runs(settings_from(ctx), strategy_id, since, as_json=as_json)
        return
    if task_id is None:
        raise click.UsageError("give TASK_ID, or --strategy ID")
    if follow and (archive is not None or at_version is not None or verify or speed):
        raise click.UsageError("--follow does not go with --archive, --at, --verify or --speed")
    if archive is not None:
        replay_archive(Path(archive), parse_task_id(task_id), as_json=as_json)
        return
    container = bootstrap.build(settings_from(ctx), upgrade=False)
    try:
        identifier = parse_task_id(task_id)
        if at_version is not None:
            state = task_state(container.service.state_at(identifier, at_version))
            click.echo(json.dumps(state) if as_json else state_summary(state))
            return
        if follow:
            follow_run(ctx, container, identifier, as_json=as_json)
            return
        steps, findings = checked_history(container, identifier)
        if not verify:
            echo_steps(steps, as_json=as_json, speed=speed)
        echo_verdict(findings, len(steps), as_json=as_json)
        if findings:
            ctx.exit(1)
    finally:
        container.close()


def follow_run(
    ctx: click.Context, container: bootstrap.Container, task_id: uuid.UUID, *, as_json: bool
) -> None:
    """Print the run's steps as they are committed, then the verdict; Ctrl-C exits 130."""
    steps, findings = checked_history(container, task_id)
    if not any(f.reason.startswith("undecodable") for f in findings):
        steps = []
        try:
            for step in follow_steps(
                container.service, task_id, poll_seconds=container.settings.poll_seconds
            ):
                steps.append(step)
                click.echo(step_text(step, as_json=as_json))
        except KeyboardInterrupt:
            click.echo(f"interrupted; {len(steps)} event(s) printed", err=True)
            ctx.exit(130)
        _, findings = checked_history(container, task_id)
    echo_verdict(findings, len(steps), as_json=as_json)
    if findings:
        ctx.exit(1)


def list_runs(settings: Settings, strategy_id: str, since: str | None, *, as_json: bool) -> None:
    try:
        moment = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise ValidationError(f"not a date: {since!r}", field="since") from None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    container = bootstrap.build(settings, upgrade=False)
    try:
        runs: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = list_tasks(container.sql, strategy_id=strategy_id, limit=200, cursor=cursor)
            for item in page.items:
                if moment and datetime.fromisoformat(item["submitted_at"]) < moment:
                    break
                runs.append(item)
            else:
                cursor = page.next_cursor
                if cursor:
                    continue
            break
    finally:
        container.close()
    if as_json:
        for run in runs:
            click.echo(json.dumps(run, default=str))
        return
    table = Table(title=f"runs of strategy {strategy_id}")
    table.add_column("task", no_wrap=True, min_width=36)
    for column in ("submitted", "status", "matched", "error"):
        table.add_column(column)
    for run in runs:
        summary = run["result_summary"] or {}
        error = (run["error"] or {}).get("message", "")
        table.add_row(
            run["id"],
            str(run["submitted_at"]),
            run["status"],
            str(summary.get("matched", "")),
            error,
        )
    Console().print(table)
    click.echo(f"{len(runs)} runs")


def replay_archive(path: Path, task_id: uuid.UUID, *, as_json: bool) -> None:
    """Replay and verify one task from an archive, with no database."""
    events, positions = retention.archived_events(path, task_id)
    if not events:
        raise TaskNotFoundError(task_id)
    breaks = digest.verify(events)
    findings = [
        audit.Finding(task_id, positions.get(b.version), b.version, b.topic, b.reason)
        for b in breaks
    ]
    steps = steps_of(events, positions)
    echo_steps(steps, as_json=as_json, speed=None)
    echo_verdict(findings, len(steps), as_json=as_json)
    if findings:
        raise SystemExit(1)


def verdict(findings: list[audit.Finding]) -> str:
    return "tampered" if findings else "intact"


def echo_verdict(findings: list[audit.Finding], events: int, *, as_json: bool) -> None:
    if as_json:
        findings_json = [f.as_json() for f in findings]
        click.echo(json.dumps({"verdict": verdict(findings), "findings": findings_json}))
    else:
        print_verdict(findings, events)


def print_verdict(findings: list[audit.Finding], events: int) -> None:
    """The verdict as plain lines (never wrapped, so it can be searched)."""
    if not findings:
        click.echo(f"verdict: chain intact over {events} events")
        return
    click.echo(f"verdict: TAMPERED, {len(findings)} finding(s)")
    for f in findings:
        click.echo(f"  task {f.task_id} position {f.position} version {f.version}: {f.reason}")


@click.group(name="audit")
def audit_group() -> None:
    """Tamper evidence over the event log."""


@audit_group.command(name="verify")
@click.option("--all", "verify_everything", is_flag=True, help="Every task in the log.")
@click.option("--task", "task_id", default=None, help="One task's chain.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_verify(
    ctx: click.Context, verify_everything: bool, task_id: str | None, as_json: bool
) -> None:
    """Recompute digest chains; exit status 1 on any mismatch."""
    from tasktrail.cli import settings_from

    if not verify_everything and task_id is None:
        raise click.UsageError("give --all or --task TASK_ID")
    container = bootstrap.build(settings_from(ctx), upgrade=False)
    try:
        started = time.perf_counter()
        if task_id is not None:
            identifier = parse_task_id(task_id)
            container.service.get_task(identifier)
            findings = audit.verify_task(container.store, identifier)
            tasks, events = 1, len(container.store.positions_of(identifier))
        else:
            report = audit.verify_all(container.store)
            findings, tasks, events = report.findings, report.tasks, report.events
        seconds = time.perf_counter() - started
        summary = {
            "tasks": tasks,
            "events": events,
            "seconds": round(seconds, 3),
            "verdict": verdict(findings),
            "findings": [f.as_json() for f in findings],
        }
        if as_json:
            click.echo(json.dumps(summary))
        else:
            print_verdict(findings, events)
            click.echo(f"{tasks} tasks, {events} events in {seconds:.2f} s")
        if findings:
            ctx.exit(1)
    finally:
        container.close()
