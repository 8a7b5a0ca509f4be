"""Retention: archive the events of tasks that ended long ago, then delete them from the log.

Positions are never renumbered (SQLite AUTOINCREMENT, PostgreSQL's sequence), and only
events below every follower's position are removed, so no follower misses or repeats a
later event. The archive is gzip JSON lines: a header, one line per event with the stored
bytes (base64), and a trailer with the count, so a cut-short file is recognised as such.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from tasktrail.engine import audit
from tasktrail.engine.store import EVENTS_TABLE, TaskStore
from tasktrail.errors import ValidationError

ARCHIVE_FORMAT = "tasktrail-archive/1"
EVENT_KEYS = frozenset({"task_id", "position", "version", "topic", "state"})


class ArchiveError(ValidationError):
    """An archive file that is not one, or was cut short."""


def write_archive(store: TaskStore, directory: Path, task_ids: Sequence[UUID]) -> tuple[Path, int]:
    """Write every event of ``task_ids`` to a new archive file; returns its path and count."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"tasktrail-archive-{stamp}.jsonl.gz"
    count = 0
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(json.dumps({"format": ARCHIVE_FORMAT, "created_at": stamp}) + "\n")
        for task_id in task_ids:
            for row in audit.task_rows(store, task_id):
                stored: StoredEvent = row.raw
                line = {
                    "task_id": str(task_id),
                    "position": row.position,
                    "version": row.version,
                    "topic": row.topic,
                    "state": base64.b64encode(stored.state).decode(),
                }
                out.write(json.dumps(line) + "\n")
                count += 1
        out.write(json.dumps({"events": count}) + "\n")
    return path, count


def read_archive(path: Path) -> Iterator[dict[str, Any]]:
    """The event lines of an archive, checked against its header and trailer."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as source:
            lines = [json.loads(line) for line in source]
    except (OSError, EOFError, ValueError) as error:
        raise ArchiveError(f"{path} is not a readable archive: {error}") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != ARCHIVE_FORMAT:
        raise ArchiveError(f"{path} is not a {ARCHIVE_FORMAT} file")
    events, trailer = lines[1:-1], lines[-1]
    if len(lines) < 2 or not isinstance(trailer, dict) or trailer.get("events") != len(events):
        raise ArchiveError(f"{path} was cut short: its trailer does not match its events")
    for number, line in enumerate(events, start=2):
        if not isinstance(line, dict) or not line.keys() >= EVENT_KEYS:
            raise ArchiveError(f"{path} line {number} is not an archived event")
    yield from events


def archived_events(path: Path, task_id: UUID) -> tuple[list[Any], dict[int, int]]:
    """Decode one task's archived events (no database needed); positions by version."""
    mapper: Any = Application(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
    events: list[Any] = []
    positions: dict[int, int] = {}
    for line in read_archive(path):
        if line["task_id"] != str(task_id):
            continue
        try:
            stored = StoredEvent(
                originator_id=task_id,
                originator_version=line["version"],
                topic=line["topic"],
                state=base64.b64decode(line["state"], validate=True),
            )
            events.append(mapper.to_domain_event(stored))
        except (TypeError, ValueError) as error:  # bad base64 or undecodable bytes
            raise ArchiveError(
                f"{path}: version {line['version']} of task {task_id} cannot be decoded: {error}"
            ) from None
        positions[line["version"]] = line["position"]
    return events, positions


def delete_events(store: TaskStore, task_ids: Iterable[UUID]) -> int:
    """Delete the tasks' events from the log; returns how many rows went."""
    datastore: Any = getattr(store.recorder, "datastore")  # noqa: B009
    task_ids = list(task_ids)
    removed = sum(len(store.positions_of(task_id)) for task_id in task_ids)
    with datastore.transaction(commit=True) as cursor:
        for task_id in task_ids:
            if store.settings.is_sqlite:
                cursor.execute(
                    f"DELETE FROM {EVENTS_TABLE} WHERE originator_id = ?", (task_id.hex,)
                )
            else:
                cursor.execute(f"DELETE FROM {EVENTS_TABLE} WHERE originator_id = %s", (task_id,))
    return removed


@dataclass(frozen=True)
class CleanupReport:
    tasks: int
    events: int
    archive: Path | None
    seconds: float
