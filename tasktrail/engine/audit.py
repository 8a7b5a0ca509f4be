"""Audit: recompute the digest chains of stored events and report where they break.

Rows are read raw and decoded one by one, so an undecodable row is a finding too, with its
position. docs/audit.md says what the chain does and does not protect against.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasktrail.engine import digest
from tasktrail.engine.store import TaskStore

BATCH = 1000


@dataclass(frozen=True)
class Finding:
    """One event whose content, order or presence no longer matches its chain."""

    task_id: UUID
    position: int | None
    version: int
    topic: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "task_id": str(self.task_id),
            "position": self.position,
            "version": self.version,
            "type": self.topic,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Row:
    position: int | None
    originator_id: UUID
    version: int
    topic: str
    raw: Any


def verify_rows(store: TaskStore, task_id: UUID, rows: Sequence[Row]) -> list[Finding]:
    """Decode and chain-check one task's rows (in version order)."""
    findings: list[Finding] = []
    events: list[Any] = []
    positions: dict[int, int | None] = {}
    for row in rows:
        positions[row.version] = row.position
        try:
            events.append(store.mapper.to_domain_event(row.raw))
        except Exception as error:  # any decoding failure is a finding
            findings.append(
                Finding(task_id, row.position, row.version, row.topic, f"undecodable: {error}")
            )
    if findings:
        return findings
    for chain_break in digest.verify(events):
        findings.append(
            Finding(
                task_id,
                positions.get(chain_break.version),
                chain_break.version,
                chain_break.topic,
                chain_break.reason,
            )
        )
    return findings


def task_rows(store: TaskStore, task_id: UUID) -> list[Row]:
    positions = dict(store.positions_of(task_id))
    stored = store.recorder.select_events(task_id)
    return [
        Row(positions.get(s.originator_version), task_id, s.originator_version, s.topic, s)
        for s in stored
    ]


def verify_task(store: TaskStore, task_id: UUID) -> list[Finding]:
    return verify_rows(store, task_id, task_rows(store, task_id))


def all_task_rows(store: TaskStore) -> Iterator[tuple[UUID, list[Row]]]:
    """Every task's rows, read from the log in position order, grouped by task."""
    grouped: dict[UUID, list[Row]] = defaultdict(list)
    after = 0
    while True:
        batch = store.recorder.select_notifications(
            start=after, limit=BATCH, inclusive_of_start=False
        )
        if not batch:
            break
        for n in batch:
            if n.topic.startswith("task."):
                task_id = UUID(str(n.originator_id))
                grouped[task_id].append(Row(n.id, task_id, n.originator_version, n.topic, n))
        after = batch[-1].id
    for task_id, rows in grouped.items():
        yield task_id, sorted(rows, key=lambda r: r.version)


@dataclass(frozen=True)
class VerifyReport:
    tasks: int
    events: int
    findings: list[Finding]


def verify_all(store: TaskStore) -> VerifyReport:
    tasks = events = 0
    findings: list[Finding] = []
    for task_id, rows in all_task_rows(store):
        tasks += 1
        events += len(rows)
        findings.extend(verify_rows(store, task_id, rows))
    return VerifyReport(tasks, events, findings)
