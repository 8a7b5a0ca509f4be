"""The tamper-evidence chain: each event of an aggregate carries SHA-256(previous digest + content).

The content is the event's canonical JSON: its topic, originator id and version, timestamp
and data fields, with sorted keys. Recomputing the chain over stored events finds any event
whose content, order or presence no longer matches (docs/audit.md says what it cannot find).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

GENESIS = "0" * 64
EXCLUDED_FIELDS = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "digest"}
)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not canonical JSON: {type(value).__name__}")


def canonical(
    topic: str, originator_id: UUID, version: int, timestamp: datetime, data: Mapping[str, Any]
) -> bytes:
    """The bytes the digest covers."""
    document = {
        "topic": topic,
        "id": str(originator_id),
        "version": version,
        "timestamp": timestamp.isoformat(),
        "data": {k: v for k, v in data.items() if k not in EXCLUDED_FIELDS},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=_default).encode()


def chain(previous: str, content: bytes) -> str:
    return hashlib.sha256(previous.encode() + content).hexdigest()


def event_data(event: Any) -> dict[str, Any]:
    """An event's own data fields (what the digest covers besides the envelope)."""
    return {k: v for k, v in vars(event).items() if k not in EXCLUDED_FIELDS}


@dataclass(frozen=True)
class ChainBreak:
    """One event whose digest does not follow from the events before it."""

    version: int
    topic: str
    reason: str


def verify(events: Iterable[Any]) -> list[ChainBreak]:
    """Recompute the chain over one aggregate's events, in stored order."""
    breaks: list[ChainBreak] = []
    previous = GENESIS
    expected_version = 1
    for event in events:
        topic = getattr(type(event), "TOPIC", type(event).__qualname__)
        version = event.originator_version
        if version != expected_version:
            breaks.append(ChainBreak(version, topic, f"expected version {expected_version}"))
        content = canonical(topic, event.originator_id, version, event.timestamp, event_data(event))
        recomputed = chain(previous, content)
        if recomputed != getattr(event, "digest", None):
            breaks.append(ChainBreak(version, topic, "digest does not match the content"))
        previous = getattr(event, "digest", recomputed)
        expected_version = version + 1
    return breaks
