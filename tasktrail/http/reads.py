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


def positive_int(raw: str, name: str) -> int:
    text = raw.strip()
    if not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise ValidationError(f"{name} must be a positive integer, not {raw!r}", field=name)
    return int(text)


def task_query(params: Mapping[str, str]) -> TaskQuery:
    limit = params.get("limit")
    return TaskQuery(
        status=params.get("status") or None,
        kind=params.get("kind") or None,
        strategy_id=params.get("strategy_id") or None,
        limit=positive_int(limit, "limit") if limit is not None else 50,
        cursor=params.get("cursor") or None,
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
        "counts": queries.counts_by_status(sql),
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
