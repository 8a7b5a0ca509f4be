"""A task's history as auditors see it: each event at its position with the state after it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasktrail.engine.log import json_ready
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.task import ExecutionTask

ENVELOPE = frozenset(
    {"originator_id", "originator_version", "originator_topic", "timestamp", "digest"}
)


def task_state(task: ExecutionTask) -> dict[str, Any]:
    """The JSON-ready state of a task (the write side's view of it, at its current version)."""
    strategy = task.parameters.get("strategy") if isinstance(task.parameters, dict) else None
    result = task.result
    return {
        "id": str(task.id),
        "kind": task.kind,
        "status": task.status.value,
        "strategy_id": task.parameters.get("strategy_id"),
        "strategy_name": strategy.get("name") if isinstance(strategy, dict) else None,
        "progress": task.progress.as_dict(),
        "submitted_at": task.submitted_at.isoformat(),
        "started_at": task.started_at.isoformat() if task.started_at else None,
        "finished_at": task.finished_at.isoformat() if task.finished_at else None,
        "worker_id": task.worker_id,
        "attempt": task.attempt,
        "cancel_requested": task.cancel_requested,
        "error": task.error,
        "result_summary": result_summary(result),
        "rerun_of": task.rerun_of,
        "version": task.version,
    }


def result_summary(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"matched": result.get("matched"), "scanned": result.get("scanned")}


@dataclass(frozen=True)
class Step:
    """One event of a task and the task's state right after it."""

    position: int | None
    version: int
    topic: str
    timestamp: str
    data: dict[str, Any]
    digest: str
    state: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "version": self.version,
            "type": self.topic,
            "timestamp": self.timestamp,
            "data": self.data,
            "digest": self.digest,
            "state": self.state,
        }


def history_with_states(service: ExecutionService, task_id: UUID) -> list[Step]:
    """Fold the task's events one by one, recording the state after each."""
    positions = dict(service.store.positions_of(task_id))
    return steps_of(service.history(task_id), positions)


def steps_of(events: Sequence[Any], positions: Mapping[int, int]) -> list[Step]:
    """Fold decoded events (of one task, in order) into steps; ``positions`` by version."""
    steps: list[Step] = []
    task: Any = None
    for event in events:
        task = event.mutate(task)
        data = {k: json_ready(v) for k, v in vars(event).items() if k not in ENVELOPE}
        steps.append(
            Step(
                position=positions.get(event.originator_version),
                version=event.originator_version,
                topic=type(event).TOPIC,
                timestamp=event.timestamp.isoformat(),
                data=data,
                digest=event.digest,
                state=task_state(task),
            )
        )
    return steps
