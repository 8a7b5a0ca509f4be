"""Reading the event log (the outbox) in position order, as plain LogEvent records.

A LogEvent is what every consumer sees: projections, the SSE hub, audit tools. ``data`` is
JSON-ready (UUIDs and datetimes as strings), so consumers need no event classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from tasktrail.engine.digest import EXCLUDED_FIELDS
from tasktrail.engine.store import TaskStore


@dataclass(frozen=True)
class LogEvent:
    """One event at its position in the log."""

    position: int
    originator_id: UUID
    version: int
    topic: str
    timestamp: datetime
    data: dict[str, Any]
    digest: str | None

    @property
    def aggregate(self) -> str:
        """The aggregate kind: "task" for ``task.started``, "strategy" for ``strategy.created``."""
        return self.topic.split(".", 1)[0]

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "id": str(self.originator_id),
            "version": self.version,
            "type": self.topic,
            "timestamp": self.timestamp.isoformat(),
            "data": self.data,
        }


def json_ready(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def to_log_event(store: TaskStore, notification: Notification) -> LogEvent:
    event: Any = store.mapper.to_domain_event(notification)
    data = {k: json_ready(v) for k, v in vars(event).items() if k not in EXCLUDED_FIELDS}
    return LogEvent(
        position=notification.id,
        originator_id=notification.originator_id,  # type: ignore[arg-type]
        version=notification.originator_version,
        topic=notification.topic,
        timestamp=event.timestamp,
        data=data,
        digest=getattr(event, "digest", None),
    )


def read_log(
    store: TaskStore, after: int, limit: int = 500, *, upto: int | None = None
) -> Sequence[LogEvent]:
    """Up to ``limit`` events with positions greater than ``after`` (and at most ``upto``)."""
    notifications = store.recorder.select_notifications(
        start=after, limit=limit, stop=upto, inclusive_of_start=False
    )
    return [to_log_event(store, n) for n in notifications]
