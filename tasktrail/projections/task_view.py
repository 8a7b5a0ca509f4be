"""The task view: one row per task with what the list and detail pages show.

Built from ``task.*`` events only (the same transitions as ``engine/task.py``'s ``apply``
methods), so it is a pure function of the log. ``task_response`` turns a row into the API's
TaskResponse shape (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tasktrail.engine.log import LogEvent
from tasktrail.projections import status_counts
from tasktrail.projections.base import insert_rows, metadata, update_rows
from tasktrail.projections.status_counts import task_status_counts

NAME = "task_view"

# The column is bounded for its index; parameters are free-form, so longer values are dropped.
STRATEGY_ID_LENGTH = 200

task_view = sa.Table(
    NAME,
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(200), nullable=False),
    sa.Column("strategy_id", sa.String(STRATEGY_ID_LENGTH), nullable=True),
    sa.Column("strategy_name", sa.Text, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress_current", sa.BigInteger, nullable=False),
    sa.Column("progress_total", sa.BigInteger, nullable=False),
    sa.Column("progress_percent", sa.Integer, nullable=False),
    sa.Column("progress_phase", sa.Text, nullable=False),
    sa.Column("progress_message", sa.Text, nullable=False),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("worker_id", sa.Text, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("error_type", sa.Text, nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("error_retryable", sa.Boolean, nullable=True),
    sa.Column("error_reason", sa.Text, nullable=True),
    sa.Column("result_matched", sa.BigInteger, nullable=True),
    sa.Column("result_scanned", sa.BigInteger, nullable=True),
    sa.Column("rerun_of", sa.String(36), nullable=True),
    sa.Column("submitted_by", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    # Newest first, alone or under each filter: (filter, submitted_at, id), scanned backwards.
    sa.Index("ix_task_view_submitted", "submitted_at", "id"),
    sa.Index("ix_task_view_status_submitted", "status", "submitted_at", "id"),
    sa.Index("ix_task_view_kind_submitted", "kind", "submitted_at", "id"),
    sa.Index("ix_task_view_strategy_submitted", "strategy_id", "submitted_at", "id"),
)


def _text_or_none(value: Any) -> str | None:
    """Text for a column; NUL (which PostgreSQL text refuses) is dropped, so no event can
    stop the projector."""
    return None if value is None else str(value).replace("\x00", "")


def _strategy_id(value: Any) -> str | None:
    """A submission's ``strategy_id`` parameter, if it can be one (any kind may carry any
    parameters; a value too long for the column is not a strategy id and is left out)."""
    text = _text_or_none(value)
    return text if text is not None and len(text) <= STRATEGY_ID_LENGTH else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def percent(current: int, total: int) -> int:
    """floor(100 * current / total), clamped to 0..100; 0 when total is 0."""
    if total <= 0:
        return 0
    return max(0, min(100, (100 * current) // total))


Rows = dict[str, dict[str, Any]]  # task id -> column values

# Every column a new row has no value for yet, so rows of one batch share their keys.
UNSET: dict[str, Any] = {
    "started_at": None,
    "finished_at": None,
    "worker_id": None,
    "error_type": None,
    "error_message": None,
    "error_retryable": None,
    "error_reason": None,
    "result_matched": None,
    "result_scanned": None,
}


def created_row(event: LogEvent) -> dict[str, Any]:
    data = event.data
    parameters = data.get("parameters")
    parameters = parameters if isinstance(parameters, dict) else {}
    strategy = parameters.get("strategy")
    strategy_name = strategy.get("name") if isinstance(strategy, dict) else None
    return UNSET | {
        "id": str(event.originator_id),
        "kind": str(data.get("kind", "")),
        "strategy_id": _strategy_id(parameters.get("strategy_id")),
        "strategy_name": _text_or_none(strategy_name),
        "status": "PENDING",
        "progress_current": 0,
        "progress_total": 0,
        "progress_percent": 0,
        "progress_phase": "",
        "progress_message": "",
        "submitted_at": event.timestamp,
        "attempt": 0,
        "cancel_requested": False,
        "rerun_of": _text_or_none(data.get("rerun_of")),
        "submitted_by": _text_or_none(data.get("submitted_by")),
        "version": event.version,
        "position": event.position,
    }


def _started(event: LogEvent) -> dict[str, Any]:
    return {
        "status": "RUNNING",
        "worker_id": _text_or_none(event.data.get("worker_id")),
        "attempt": int(event.data.get("attempt", 0)),
        "started_at": event.timestamp,
    }


def _progress(event: LogEvent) -> dict[str, Any]:
    current = int(event.data.get("current", 0))
    total = int(event.data.get("total", 0))
    return {
        "progress_current": current,
        "progress_total": total,
        "progress_percent": percent(current, total),
        "progress_phase": str(event.data.get("phase", "")),
        "progress_message": str(event.data.get("message", "")),
    }


def _cancel_requested(_event: LogEvent) -> dict[str, Any]:
    return {"cancel_requested": True}


def _completed(event: LogEvent) -> dict[str, Any]:
    result = event.data.get("result")
    result = result if isinstance(result, dict) else {}
    return {
        "status": "COMPLETED",
        "finished_at": event.timestamp,
        "result_matched": _int_or_none(result.get("matched")),
        "result_scanned": _int_or_none(result.get("scanned")),
    }


def _failed(event: LogEvent) -> dict[str, Any]:
    return {
        "status": "FAILED",
        "finished_at": event.timestamp,
        "error_type": _text_or_none(event.data.get("error_type")),
        "error_message": _text_or_none(event.data.get("message")),
        "error_retryable": bool(event.data.get("retryable", False)),
        "error_reason": _text_or_none(event.data.get("reason")),
    }


def _cancelled(event: LogEvent) -> dict[str, Any]:
    return {"status": "CANCELLED", "finished_at": event.timestamp}


CHANGES: dict[str, Callable[[LogEvent], dict[str, Any]]] = {
    "task.started": _started,
    "task.progress_updated": _progress,
    "task.cancel_requested": _cancel_requested,
    "task.completed": _completed,
    "task.failed": _failed,
    "task.cancelled": _cancelled,
}


class TaskViewProjection:
    """Keeps ``task_view``, and its counts by status, in step with the ``task.*`` events."""

    name = NAME
    tables: Sequence[sa.Table] = (task_view, task_status_counts)

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        self.apply_batch(connection, tables, [event])

    def apply_batch(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], events: Sequence[LogEvent]
    ) -> None:
        """The same as ``apply`` for each event, with one write per task instead of one per
        event: a rebuild replays mostly whole histories, ten events or more per task."""
        table = tables[NAME]
        new, changed = _fold(events)
        # The statuses being left, read once for the batch before the rows change.
        moving = [task_id for task_id, values in changed.items() if "status" in values]
        before = status_counts.statuses_of(connection, table, moving)
        insert_rows(connection, table, list(new.values()))
        _update(connection, table, changed)
        # A task missing from the view is not in ``before``: its update changed no row.
        after = {task_id: changed[task_id]["status"] for task_id in before}
        after |= {task_id: row["status"] for task_id, row in new.items()}
        deltas = status_counts.moves(before, after)
        status_counts.add(connection, tables[status_counts.NAME], deltas)


def _fold(events: Sequence[LogEvent]) -> tuple[Rows, Rows]:
    """The batch as rows to insert (tasks created in it, later changes merged in) and, per
    task already in the view, the columns to set."""
    new: Rows = {}
    changed: Rows = {}
    for event in events:
        task_id = str(event.originator_id)
        if event.topic == "task.created":
            new[task_id] = created_row(event)
        elif event.topic in CHANGES:
            changes = _changes(event)
            (new if task_id in new else changed).setdefault(task_id, {}).update(changes)
    return new, changed


def _update(connection: sa.Connection, table: sa.Table, changed: Rows) -> None:
    # One statement per set of changed columns (a statement's SET comes from its rows' keys).
    alike: dict[frozenset[str], list[dict[str, Any]]] = {}
    for task_id, values in changed.items():
        alike.setdefault(frozenset(values), []).append(values | {"id": task_id})
    for rows in alike.values():
        update_rows(connection, table, "id", rows)


def _changes(event: LogEvent) -> dict[str, Any]:
    return CHANGES[event.topic](event) | {"version": event.version, "position": event.position}


def iso(moment: datetime | None) -> str | None:
    """An aware UTC ISO timestamp (SQLite hands back naive datetimes)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).isoformat()
    return moment.astimezone(UTC).isoformat()


def task_response(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A task_view row in the TaskResponse shape of docs/api.md."""
    status = row["status"]
    return {
        "id": row["id"],
        "kind": row["kind"],
        "status": status,
        "strategy_id": row["strategy_id"],
        "strategy_name": row["strategy_name"],
        "progress": {
            "current": row["progress_current"],
            "total": row["progress_total"],
            "percent": row["progress_percent"],
            "phase": row["progress_phase"],
            "message": row["progress_message"],
        },
        "submitted_at": iso(row["submitted_at"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "worker_id": row["worker_id"],
        "attempt": row["attempt"],
        "cancel_requested": row["cancel_requested"],
        "error": _error(row) if status == "FAILED" else None,
        "result_summary": (
            {"matched": row["result_matched"], "scanned": row["result_scanned"]}
            if status == "COMPLETED"
            else None
        ),
        "rerun_of": row["rerun_of"],
        "version": row["version"],
        "position": row["position"],
    }


def _error(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "type": row["error_type"],
        "message": row["error_message"],
        "retryable": row["error_retryable"],
        "reason": row["error_reason"],
    }
