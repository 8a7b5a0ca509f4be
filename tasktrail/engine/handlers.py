"""The handler API: task kinds registered by name, and the context a running handler gets.

A handler is ``Callable[[dict params, TaskContext], dict result]``. It reports progress
through ``context.progress(...)``; at each progress point (and at ``check_cancelled()``) the
context raises ``TaskCancelled`` when the task's cancellation was requested, or
``TaskTimedOut`` past the kind's timeout. The worker turns those into the terminal events.

A kind's timeout: at the deadline the worker records ``Failed`` (reason ``timeout``) at once,
whatever the handler is doing, and the handler is told to stop at its next progress point. A
Python thread cannot be killed, so a handler blocked where it reports nothing runs on in its
thread; its late result is discarded (the task has its one terminal event already).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasktrail.errors import TasktrailError, ValidationError

SLEEP_KIND = "tasktrail.sleep"


class TaskCancelled(TasktrailError):
    """Raised inside a handler whose task's cancellation was requested."""


class TaskTimedOut(TasktrailError):
    """Raised inside a handler that ran past its kind's timeout."""


class TaskLost(TasktrailError):
    """Raised inside a handler whose task was ended by someone else (the reaper)."""


Reporter = Callable[[int, int, str, str], None]


class TaskContext:
    """What a running handler may do: report progress and check for cancellation."""

    def __init__(
        self,
        task_id: UUID,
        attempt: int,
        *,
        report: Reporter,
        cancel_requested: Callable[[], bool],
        deadline: float | None = None,
    ) -> None:
        self.task_id = task_id
        self.attempt = attempt
        self._report = report
        self._cancel_requested = cancel_requested
        self._deadline = deadline

    def progress(self, current: int, total: int, phase: str, message: str = "") -> None:
        """Record how far the run is; raises TaskCancelled / TaskTimedOut when it must stop."""
        self.check_cancelled()
        self._report(current, total, phase, message)

    def check_cancelled(self) -> None:
        """Raise TaskCancelled if cancellation was requested, TaskTimedOut past the deadline."""
        if self._cancel_requested():
            raise TaskCancelled(f"task {self.task_id} was cancelled")
        if self.timed_out:
            raise TaskTimedOut(f"task {self.task_id} ran past its timeout")

    @property
    def timed_out(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline


Handler = Callable[[dict[str, Any], TaskContext], dict[str, Any]]
Validator = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Registration:
    """One task kind: its handler, optional timeout and parameter check."""

    kind: str
    handler: Handler
    timeout_seconds: float | None = None
    validate: Validator | None = None


class UnknownKindError(ValidationError):
    def __init__(self, kind: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown task kind {kind!r}; known: {', '.join(known)}", field="kind")


class HandlerRegistry:
    """Task kinds by name; thread-safe to read while registering."""

    def __init__(self) -> None:
        self._registrations: dict[str, Registration] = {}
        self._lock = threading.Lock()

    def register(
        self,
        kind: str,
        handler: Handler,
        *,
        timeout_seconds: float | None = None,
        validate: Validator | None = None,
    ) -> None:
        """Make ``kind`` runnable by ``handler``; registering a kind twice replaces it."""
        if not kind:
            raise ValidationError("a task kind needs a name", field="kind")
        with self._lock:
            self._registrations[kind] = Registration(kind, handler, timeout_seconds, validate)

    def kinds(self) -> list[str]:
        with self._lock:
            return sorted(self._registrations)

    def get(self, kind: str) -> Registration:
        with self._lock:
            found = self._registrations.get(kind)
        if found is None:
            raise UnknownKindError(kind, self.kinds())
        return found


def sleep_handler(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
    """``tasktrail.sleep``: sleep ``seconds`` in ``steps`` steps, reporting each; for tests.

    ``{"fail": "message"}`` raises RuntimeError after the sleep (to exercise failures).
    """
    seconds = float(params.get("seconds", 0.0))
    steps = max(0, int(params.get("steps", 0)))
    if steps == 0:
        time.sleep(seconds)
        context.check_cancelled()
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        context.progress(step, steps, "sleeping", f"step {step} of {steps}")
    if params.get("fail"):
        raise RuntimeError(str(params["fail"]))
    return {"slept": seconds, "steps": steps}


def validate_sleep(params: dict[str, Any]) -> None:
    for name in ("seconds", "steps"):
        value = params.get(name, 0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValidationError(f"{name} must be a number of at least 0", field=name)


def register_builtin_kinds(registry: HandlerRegistry) -> None:
    registry.register(SLEEP_KIND, sleep_handler, validate=validate_sleep)
