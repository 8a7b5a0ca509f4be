"""Reads answered from the projections (synchronous; endpoints call them via ``run_sync``).

A task that was just submitted may not be in the view yet (the projector runs behind the
write side by a few milliseconds); ``task_response`` then answers from the write side so a
client following a 202's Location never sees a 404 for its own task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasktrail.engine.history import task_state
from tasktrail.errors import ValidationError
from tasktrail.http.context import ApiContext
from tasktrail.http.problems import BadRequestError
from tasktrail.projections import queries


@dataclass(frozen=True)
class TaskQuery:
    status: str | None
    kind: str | None
    strategy_id: str | None
    limit: int
    cursor: str | None


# The largest integer a query parameter takes (nine digits); the document states it too.
MAX_QUERY_INT = 999_999_999


def positive_int(raw: str, name: str) -> int:
    text = raw.strip()
    # isdigit() alone admits "²" and other digits int() refuses (that was a 500).
    digits = text.isascii() and text.isdigit() and len(text) <= len(str(MAX_QUERY_INT))
    if not digits or int(text) < 1:
        raise ValidationError(f"{name} must be a positive integer, not {raw!r}", field=name)
    return int(text)


def text(params: Mapping[str, str], name: str) -> str | None:
    """A text filter; None when absent or empty, 422 with a NUL (PostgreSQL cannot take one)."""
    value = params.get(name) or None
    if value is not None and "\x00" in value:
        raise ValidationError(f"{name} must not contain NUL characters", field=name)
    return value


def task_query(params: Mapping[str, str]) -> TaskQuery:
    limit = params.get("limit")
    return TaskQuery(
        status=text(params, "status"),
        kind=text(params, "kind"),
        strategy_id=text(params, "strategy_id"),
        limit=positive_int(limit, "limit") if limit is not None else 50,
        cursor=text(params, "cursor"),
    )


def task_page(ctx: ApiContext, query: TaskQuery) -> dict[str, Any]:
    sql = ctx.container.sql
    try:
        page = queries.list_tasks(
            sql,
            status=query.status,
            kind=query.kind,
            strategy_id=query.strategy_id,
            limit=query.limit,
            cursor=query.cursor,
        )
    except ValidationError as error:
        if error.field == "cursor":
            raise BadRequestError(str(error), field="cursor") from None
        raise
    return {
        "items": page.items,
        "next_cursor": page.next_cursor,
        "position": page.position,
        "counts": page.counts,
    }


def task_response(ctx: ApiContext, task_id: UUID) -> dict[str, Any]:
    found = queries.find_task(ctx.container.sql, str(task_id))
    if found is not None:
        return found
    task = ctx.container.service.get_task(task_id)  # 404 when the write side lacks it too
    positions = ctx.container.store.positions_of(task_id)
    return {**task_state(task), "position": positions[-1][1] if positions else None}


def counts_by_status(ctx: ApiContext) -> dict[str, int]:
    return queries.counts_by_status(ctx.container.sql)


def projection_status(ctx: ApiContext) -> list[dict[str, Any]]:
    states = queries.projection_status(ctx.container.sql, ctx.container.store)
    return [state.as_json() for state in states]


def projection_lag(ctx: ApiContext) -> int:
    """The largest lag of any projection behind the log's head (the database must answer)."""
    states = queries.projection_status(ctx.container.sql, ctx.container.store)
    if not states:
        return ctx.container.store.head()
    return max(state.lag for state in states)


def strategies(ctx: ApiContext) -> dict[str, Any]:
    listed = queries.list_strategies(ctx.container.sql)
    return {"items": listed.items, "position": listed.position}


def strategy(ctx: ApiContext, strategy_id: str) -> dict[str, Any]:
    return queries.get_strategy(ctx.container.sql, strategy_id)
