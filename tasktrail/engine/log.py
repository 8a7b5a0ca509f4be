"""Reading the event log (the outbox) in position order, as plain LogEvent records.

A LogEvent is what every consumer sees: projections, the SSE hub, audit tools. ``data`` is
JSON-ready (UUIDs and datetimes as strings), so consumers need no event classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification

from tasktrail.engine.digest import EXCLUDED_FIELDS
from tasktrail.engine.store import TaskStore

Body = tuple[datetime, dict[str, Any], str | None]  # timestamp, data, digest


class LogEvent:
    """One event at its position in the log.

    Read from the log, its body (timestamp, data, digest) is decoded on first use: every
    process's follower reads every event, and most of its consumers look at the topic and
    the ids only (a standby projector, a worker's cancel watch).
    """

    __slots__ = ("_body", "_decode", "originator_id", "position", "topic", "version")

    def __init__(
        self,
        position: int,
        originator_id: UUID,
        version: int,
        topic: str,
        timestamp: datetime,
        data: dict[str, Any],
        digest: str | None,
    ) -> None:
        self.position = position
        self.originator_id = originator_id
        self.version = version
        self.topic = topic
        self._body: Body | None = (timestamp, data, digest)
        self._decode: Callable[[], Body] | None = None

    @classmethod
    def decoded_later(
        cls,
        position: int,
        originator_id: UUID,
        version: int,
        topic: str,
        decode: Callable[[], Body],
    ) -> LogEvent:
        event = cls.__new__(cls)
        event.position = position
        event.originator_id = originator_id
        event.version = version
        event.topic = topic
        event._body = None
        event._decode = decode
        return event

    def _decoded(self) -> Body:
        body = self._body
        if body is None:
            decode = self._decode
            if decode is None:  # another thread decoded it meanwhile (body set first)
                body = self._body
            else:
                body = decode()
                self._body = body
                self._decode = None  # the stored bytes are no longer needed
        assert body is not None
        return body

    @property
    def timestamp(self) -> datetime:
        return self._decoded()[0]

    @property
    def data(self) -> dict[str, Any]:
        return self._decoded()[1]

    @property
    def digest(self) -> str | None:
        return self._decoded()[2]

    @property
    def aggregate(self) -> str:
        """The aggregate kind: "task" for ``task.started``, "strategy" for ``strategy.created``."""
        return self.topic.split(".", 1)[0]

    def _key(self) -> tuple[Any, ...]:
        return (self.position, self.originator_id, self.version, self.topic, *self._decoded())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.position, self.originator_id, self.version, self.topic))

    def __repr__(self) -> str:
        return (
            f"LogEvent(position={self.position!r}, originator_id={self.originator_id!r}, "
            f"version={self.version!r}, topic={self.topic!r})"
        )

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
    def decode() -> Body:
        event: Any = store.mapper.to_domain_event(notification)
        data = {k: json_ready(v) for k, v in vars(event).items() if k not in EXCLUDED_FIELDS}
        return event.timestamp, data, getattr(event, "digest", None)

    return LogEvent.decoded_later(
        notification.id,
        notification.originator_id,  # type: ignore[arg-type]
        notification.originator_version,
        notification.topic,
        decode,
    )


def read_log(
    store: TaskStore, after: int, limit: int = 500, *, upto: int | None = None
) -> Sequence[LogEvent]:
    """Up to ``limit`` events with positions greater than ``after`` (and at most ``upto``)."""
    notifications = store.recorder.select_notifications(
        start=after, limit=limit, stop=upto, inclusive_of_start=False
    )
    return [to_log_event(store, n) for n in notifications]
