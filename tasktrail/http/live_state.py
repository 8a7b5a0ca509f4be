"""The task state after each event, folded in memory for the SSE streams.

Every streamed event carries the task's state after it. Loading the aggregate for each of
thousands of events per second would cost a query each, so the hub folds each LogEvent onto
the previous state (the same transitions as ``engine/task.py``'s ``apply`` methods). A task
first seen mid-life is loaded once from the write side at that version.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from tasktrail.engine.history import result_summary
from tasktrail.engine.log import LogEvent

State = dict[str, Any]
# Loads the state of a task right after its event ``version`` (from the write side).
StateLoader = Callable[[UUID, int], State | None]

EMPTY_PROGRESS = {"current": 0, "total": 0, "percent": 0, "phase": "", "message": ""}


def created_state(event: LogEvent) -> State:
    data = event.data
    parameters = data.get("parameters") or {}
    strategy = parameters.get("strategy") if isinstance(parameters, dict) else None
    return {
        "id": str(event.originator_id),
        "kind": data.get("kind"),
        "status": "PENDING",
        "strategy_id": parameters.get("strategy_id") if isinstance(parameters, dict) else None,
        "strategy_name": strategy.get("name") if isinstance(strategy, dict) else None,
        "progress": dict(EMPTY_PROGRESS),
        "submitted_at": event.timestamp.isoformat(),
        "started_at": None,
        "finished_at": None,
        "worker_id": None,
        "attempt": 0,
        "cancel_requested": False,
        "error": None,
        "result_summary": None,
        "rerun_of": data.get("rerun_of"),
        "version": event.version,
    }


def percent(current: int, total: int) -> int:
    if total <= 0:
        return 0
    return max(0, min(100, (100 * current) // total))


def _started(state: State, event: LogEvent) -> None:
    state.update(
        status="RUNNING",
        worker_id=event.data.get("worker_id"),
        attempt=event.data.get("attempt", 0),
        started_at=event.timestamp.isoformat(),
    )


def _progress(state: State, event: LogEvent) -> None:
    current = int(event.data.get("current", 0))
    total = int(event.data.get("total", 0))
    state["progress"] = {
        "current": current,
        "total": total,
        "percent": percent(current, total),
        "phase": event.data.get("phase", ""),
        "message": event.data.get("message", ""),
    }


def _cancel_requested(state: State, _event: LogEvent) -> None:
    state["cancel_requested"] = True


def _completed(state: State, event: LogEvent) -> None:
    result = event.data.get("result")
    state.update(
        status="COMPLETED",
        result_summary=result_summary(result if isinstance(result, dict) else None),
        finished_at=event.timestamp.isoformat(),
    )


def _failed(state: State, event: LogEvent) -> None:
    data = event.data
    state.update(
        status="FAILED",
        error={
            "type": data.get("error_type"),
            "message": data.get("message"),
            "retryable": data.get("retryable", False),
            "reason": data.get("reason"),
        },
        finished_at=event.timestamp.isoformat(),
    )


def _cancelled(state: State, event: LogEvent) -> None:
    state.update(status="CANCELLED", finished_at=event.timestamp.isoformat())


TRANSITIONS: dict[str, Callable[[State, LogEvent], None]] = {
    "task.started": _started,
    "task.progress_updated": _progress,
    "task.cancel_requested": _cancel_requested,
    "task.completed": _completed,
    "task.failed": _failed,
    "task.cancelled": _cancelled,
}
TERMINAL_TYPES = frozenset({"task.completed", "task.failed", "task.cancelled"})


class StateCache:
    """The latest folded state of recently seen tasks (least recently used ones dropped)."""

    def __init__(self, loader: StateLoader, capacity: int = 20_000) -> None:
        self._loader = loader
        self._capacity = capacity
        self._states: OrderedDict[UUID, State] = OrderedDict()

    def after(self, event: LogEvent) -> State | None:
        """The state of ``event``'s task right after it (None for non-task events)."""
        if event.aggregate != "task":
            return None
        state = self._fold(event)
        if state is None:
            return None
        self._states[event.originator_id] = state
        self._states.move_to_end(event.originator_id)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)
        return dict(state)

    def _fold(self, event: LogEvent) -> State | None:
        if event.topic == "task.created":
            return created_state(event)
        previous = self._states.get(event.originator_id)
        if previous is None or previous["version"] != event.version - 1:
            # First seen mid-life (or out of step): take the write side's word for it.
            return self._loader(event.originator_id, event.version)
        state = dict(previous)
        transition = TRANSITIONS.get(event.topic)
        if transition is not None:
            transition(state, event)
        state["version"] = event.version
        return state
