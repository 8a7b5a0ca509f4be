"""The strategy view: one row per strategy with its current full definition.

Built from ``strategy.created`` / ``strategy.updated`` (docs/design.md R3), each of which
carries the whole definition, so the row is simply the latest one. Read from
``LogEvent.data`` by topic: the read side does not import the screening package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from tasktrail.engine.log import LogEvent
from tasktrail.projections.base import metadata
from tasktrail.projections.task_view import iso

NAME = "strategy_view"
DEFINITION_FIELDS = ("name", "description", "universe", "conditions", "sort", "limit")

strategy_view = sa.Table(
    NAME,
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Index("ix_strategy_view_name", "name", "id"),
)


def definition_of(event: LogEvent) -> dict[str, Any]:
    return {field: event.data.get(field) for field in DEFINITION_FIELDS}


class StrategyViewProjection:
    """Keeps ``strategy_view`` in step with the ``strategy.*`` events."""

    name = NAME
    tables: Sequence[sa.Table] = (strategy_view,)

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        table = tables[NAME]
        definition = definition_of(event)
        values = {
            "name": str(definition["name"] or ""),
            "description": str(definition["description"] or ""),
            "definition": definition,
            "version": event.version,
            "updated_at": event.timestamp,
            "position": event.position,
        }
        if event.topic == "strategy.created":
            row = {"id": str(event.originator_id), "created_at": event.timestamp} | values
            connection.execute(table.insert().values(row))
        elif event.topic == "strategy.updated":
            strategy_id = str(event.originator_id)
            connection.execute(table.update().where(table.c.id == strategy_id).values(values))


def condition_text(condition: Mapping[str, Any]) -> str:
    """``pe < 15`` or ``close > sma_50``."""
    right = condition.get("other", condition.get("value"))
    return f"{condition.get('metric')} {condition.get('operator')} {right}"


def strategy_response(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A strategy_view row in the Strategy shape of docs/api.md."""
    definition: dict[str, Any] = dict(row["definition"] or {})
    conditions = definition.get("conditions") or []
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "universe": definition.get("universe"),
        "conditions": conditions,
        "conditions_text": [condition_text(c) for c in conditions if isinstance(c, dict)],
        "sort": definition.get("sort"),
        "limit": definition.get("limit"),
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }
