"""Reading the projections: task lists (keyset-paginated), one task, counts, strategies.

Every answer carries ``position``: the task view's stored position, read BEFORE the rows in
the same transaction, so the rows reflect at least that position and a client streaming
from ``after=position`` misses nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tasktrail.engine.store import TaskStore
from tasktrail.errors import NotFoundError, ValidationError
from tasktrail.projections import positions, status_counts
from tasktrail.projections.strategy_view import strategy_response, strategy_view
from tasktrail.projections.task_view import NAME as TASK_VIEW
from tasktrail.projections.task_view import task_response, task_view

STATUSES = ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
MAX_LIMIT = 500


@dataclass(frozen=True)
class TaskPage:
    """One page of tasks, newest first, and where the next page starts."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    position: int
    counts: dict[str, int]  # tasks in each status, the whole view's (not the filter's)


@dataclass(frozen=True)
class StrategyList:
    items: list[dict[str, Any]]
    position: int


@dataclass(frozen=True)
class ProjectionState:
    name: str
    position: int
    head: int
    lag: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lag", max(0, self.head - self.position))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "position": self.position, "head": self.head, "lag": self.lag}


class TaskNotInViewError(NotFoundError):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


class StrategyNotFoundError(NotFoundError):
    def __init__(self, strategy_id: str) -> None:
        super().__init__(f"no strategy with id {strategy_id}")
        self.strategy_id = strategy_id


def view_position(connection: sa.Connection, name: str = TASK_VIEW) -> int:
    return positions.read(connection, [name]).get(name, 0)


# -- cursors ---------------------------------------------------------------------------------


def encode_cursor(submitted_at: datetime, task_id: str) -> str:
    raw = json.dumps([submitted_at.isoformat(), task_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (submitted_at, id) key a cursor stands for; ValidationError if it is garbled."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, task_id = json.loads(raw)
        if not isinstance(task_id, str):
            raise TypeError(task_id)
        return datetime.fromisoformat(moment), task_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise ValidationError("cursor is not one this API handed out", field="cursor") from None


# -- tasks -----------------------------------------------------------------------------------


def _validate(status: str | None, limit: int) -> None:
    if status is not None and status not in STATUSES:
        raise ValidationError(
            f"unknown status {status!r}; known: {', '.join(STATUSES)}", field="status"
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be 1..{MAX_LIMIT}", field="limit")


def naive_for(connection: sa.Connection, moment: datetime) -> datetime:
    # SQLite stores naive UTC datetimes; comparing needs the same form.
    if connection.dialect.name == "sqlite" and moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def list_tasks(
    sql: sa.Engine,
    *,
    status: str | None = None,
    kind: str | None = None,
    strategy_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Tasks newest first (submitted_at desc, id desc), ``limit`` at a time, from ``cursor``."""
    _validate(status, limit)
    c = task_view.c
    query = sa.select(task_view).order_by(c.submitted_at.desc(), c.id.desc()).limit(limit + 1)
    for column, value in ((c.status, status), (c.kind, kind), (c.strategy_id, strategy_id)):
        if value is not None:
            query = query.where(column == value)
    with sql.connect() as connection:
        if cursor is not None:
            moment, last_id = decode_cursor(cursor)
            moment = naive_for(connection, moment)
            query = query.where(
                # A row-value comparison, which both databases seek in the (filter,
                # submitted_at, id) index; the equivalent OR of two conditions made a page
                # 50,000 tasks deep 3-4x slower (benchmarks/api_latency.py).
                sa.tuple_(c.submitted_at, c.id) < sa.tuple_(moment, last_id)
            )
        position = view_position(connection)
        rows = connection.execute(query).mappings().all()
        counts = counts_in(connection)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(page[-1]["submitted_at"], page[-1]["id"])
    return TaskPage([task_response(r) for r in page], next_cursor, position, counts)


def find_task(sql: sa.Engine, task_id: str) -> dict[str, Any] | None:
    """One task as TaskResponse, with ``position`` the view's position; None if unknown."""
    with sql.connect() as connection:
        position = view_position(connection)
        row = (
            connection.execute(sa.select(task_view).where(task_view.c.id == str(task_id)))
            .mappings()
            .first()
        )
    if row is None:
        return None
    return task_response(row) | {"position": position}


def get_task(sql: sa.Engine, task_id: str) -> dict[str, Any]:
    """One task as TaskResponse; TaskNotInViewError (a NotFoundError) if unknown."""
    found = find_task(sql, task_id)
    if found is None:
        raise TaskNotInViewError(str(task_id))
    return found


def counts_by_status(sql: sa.Engine) -> dict[str, int]:
    """How many tasks the task view holds in each status (every status present, 0 when
    none)."""
    with sql.connect() as connection:
        return counts_in(connection)


def counts_in(connection: sa.Connection) -> dict[str, int]:
    # The counts the projection keeps beside the view: no scan of the view per request.
    counted = status_counts.read(connection)
    return {status: counted.get(status, 0) for status in STATUSES}


# -- strategies ------------------------------------------------------------------------------


def list_strategies(sql: sa.Engine) -> StrategyList:
    """Every strategy by name, in the Strategy shape."""
    query = sa.select(strategy_view).order_by(strategy_view.c.name, strategy_view.c.id)
    with sql.connect() as connection:
        position = view_position(connection, strategy_view.name)
        rows = connection.execute(query).mappings().all()
    return StrategyList([strategy_response(r) for r in rows], position)


def get_strategy(sql: sa.Engine, strategy_id: str) -> dict[str, Any]:
    """One strategy; StrategyNotFoundError (a NotFoundError) if unknown."""
    query = sa.select(strategy_view).where(strategy_view.c.id == str(strategy_id))
    with sql.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        raise StrategyNotFoundError(str(strategy_id))
    return strategy_response(row)


# -- operations ------------------------------------------------------------------------------


def projection_status(
    sql: sa.Engine, store: TaskStore, names: Sequence[str] | None = None
) -> list[ProjectionState]:
    """Each projection's position, the log's head and the lag between them."""
    with sql.connect() as connection:
        stored = positions.read(connection)
    head = store.head()
    wanted = list(names) if names is not None else sorted(n for n in stored if "__" not in n)
    return [ProjectionState(name, stored.get(name, 0), head) for name in wanted]
