"""The ExecutionTask aggregate: one run of a task, recorded as immutable events.

States: PENDING -> RUNNING -> COMPLETED | FAILED | CANCELLED, and PENDING -> CANCELLED.
Terminal states absorb: any command on them raises InvalidTaskStateError and records nothing.
Each command method checks, then triggers one event; the event's ``apply`` is the only code
that changes state, so replaying the log rebuilds exactly what was decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from tasktrail.engine import digest
from tasktrail.errors import ConflictError


class TaskStatus(Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})


class InvalidTaskStateError(ConflictError):
    """A command that the task's current status does not allow."""

    def __init__(self, task_id: UUID, status: TaskStatus, command: str) -> None:
        super().__init__(f"task {task_id} is {status.value}: cannot {command}")
        self.task_id = task_id
        self.status = status
        self.command = command


@dataclass(frozen=True)
class Progress:
    """How far a run is: ``percent`` is floor(100 * current / total), clamped to 0..100."""

    current: int = 0
    total: int = 0
    phase: str = ""
    message: str = ""

    @property
    def percent(self) -> int:
        if self.total <= 0:
            return 0
        return max(0, min(100, (100 * self.current) // self.total))

    def as_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "total": self.total,
            "percent": self.percent,
            "phase": self.phase,
            "message": self.message,
        }


class ExecutionTask(Aggregate):
    """One execution of a registered task kind."""

    TOPIC: ClassVar[str] = "task"

    class Event(Aggregate.Event):
        TOPIC: ClassVar[str] = "task.event"
        digest: str

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate.__dict__["_last_digest"] = self.digest
            return aggregate

    class Created(Event, Aggregate.Created):
        TOPIC: ClassVar[str] = "task.created"
        kind: str
        parameters: dict[str, Any]
        submitted_by: str
        idempotency_key: str | None
        rerun_of: str | None

    class Started(Event):
        TOPIC: ClassVar[str] = "task.started"
        worker_id: str
        attempt: int

        def apply(self, task: ExecutionTask) -> None:
            task.status = TaskStatus.RUNNING
            task.worker_id = self.worker_id
            task.attempt = self.attempt
            task.started_at = self.timestamp

    class ProgressUpdated(Event):
        TOPIC: ClassVar[str] = "task.progress_updated"
        current: int
        total: int
        phase: str
        message: str

        def apply(self, task: ExecutionTask) -> None:
            task.progress = Progress(self.current, self.total, self.phase, self.message)

    class CancelRequested(Event):
        TOPIC: ClassVar[str] = "task.cancel_requested"
        requested_by: str
        reason: str

        def apply(self, task: ExecutionTask) -> None:
            task.cancel_requested = True

    class Completed(Event):
        TOPIC: ClassVar[str] = "task.completed"
        result: dict[str, Any]

        def apply(self, task: ExecutionTask) -> None:
            task.status = TaskStatus.COMPLETED
            task.result = self.result
            task.finished_at = self.timestamp

    class Failed(Event):
        TOPIC: ClassVar[str] = "task.failed"
        error_type: str
        message: str
        retryable: bool
        reason: str

        def apply(self, task: ExecutionTask) -> None:
            task.status = TaskStatus.FAILED
            task.error = {
                "type": self.error_type,
                "message": self.message,
                "retryable": self.retryable,
                "reason": self.reason,
            }
            task.finished_at = self.timestamp

    class Cancelled(Event):
        TOPIC: ClassVar[str] = "task.cancelled"
        cancelled_by: str
        reason: str

        def apply(self, task: ExecutionTask) -> None:
            task.status = TaskStatus.CANCELLED
            task.finished_at = self.timestamp

    def __init__(
        self,
        kind: str,
        parameters: dict[str, Any],
        submitted_by: str,
        idempotency_key: str | None,
        rerun_of: str | None,
    ) -> None:
        self.kind = kind
        self.parameters = parameters
        self.submitted_by = submitted_by
        self.idempotency_key = idempotency_key
        self.rerun_of = rerun_of
        self.status = TaskStatus.PENDING
        self.progress = Progress()
        self.worker_id: str | None = None
        self.attempt = 0
        self.cancel_requested = False
        self.result: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.started_at: datetime | None = None
        self.finished_at: datetime | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        task_id: UUID,
        kind: str,
        parameters: dict[str, Any],
        *,
        submitted_by: str = "anonymous",
        idempotency_key: str | None = None,
        rerun_of: UUID | None = None,
    ) -> ExecutionTask:
        """A new PENDING task; its Created event starts the digest chain."""
        data: dict[str, Any] = {
            "kind": kind,
            "parameters": parameters,
            "submitted_by": submitted_by,
            "idempotency_key": idempotency_key,
            "rerun_of": str(rerun_of) if rerun_of else None,
        }
        timestamp = cls.Created.create_timestamp()
        content = digest.canonical(cls.Created.TOPIC, task_id, 1, timestamp, data)
        return cls._create(
            cls.Created,
            id=task_id,
            timestamp=timestamp,
            digest=digest.chain(digest.GENESIS, content),
            **data,
        )

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Stamp every later event with the digest chaining it to the one before."""
        timestamp = event_class.create_timestamp()
        content = digest.canonical(event_class.TOPIC, self.id, self.version + 1, timestamp, kwargs)
        kwargs["digest"] = digest.chain(self.last_digest, content)
        super().trigger_event(event_class, timestamp=timestamp, **kwargs)

    @property
    def last_digest(self) -> str:
        """The digest of the last event applied: the next event chains to it."""
        return str(self.__dict__.get("_last_digest", digest.GENESIS))

    @property
    def submitted_at(self) -> datetime:
        return self.created_on

    # -- commands -------------------------------------------------------------------------

    def start(self, worker_id: str) -> None:
        self._require({TaskStatus.PENDING}, "start")
        if self.cancel_requested:
            raise InvalidTaskStateError(self.id, self.status, "start: cancel requested")
        self.trigger_event(self.Started, worker_id=worker_id, attempt=self.attempt + 1)

    def update_progress(self, current: int, total: int, phase: str = "", message: str = "") -> None:
        self._require({TaskStatus.RUNNING}, "update progress")
        if current < 0 or total < 0:
            raise ValueError("progress current and total must not be negative")
        self.trigger_event(
            self.ProgressUpdated, current=current, total=total, phase=phase, message=message
        )

    def request_cancel(self, requested_by: str = "anonymous", reason: str = "") -> None:
        """Cancel a PENDING task at once; ask a RUNNING one to stop at its next progress point."""
        if self.status is TaskStatus.PENDING:
            self.cancel(cancelled_by=requested_by, reason=reason or "cancelled before start")
            return
        self._require({TaskStatus.RUNNING}, "request cancellation")
        if not self.cancel_requested:
            self.trigger_event(self.CancelRequested, requested_by=requested_by, reason=reason)

    def complete(self, result: dict[str, Any]) -> None:
        self._require({TaskStatus.RUNNING}, "complete")
        self.trigger_event(self.Completed, result=result)

    def fail(
        self, error_type: str, message: str, *, retryable: bool = False, reason: str = "error"
    ) -> None:
        self._require({TaskStatus.RUNNING}, "fail")
        self.trigger_event(
            self.Failed, error_type=error_type, message=message, retryable=retryable, reason=reason
        )

    def cancel(self, cancelled_by: str = "anonymous", reason: str = "") -> None:
        self._require({TaskStatus.PENDING, TaskStatus.RUNNING}, "cancel")
        self.trigger_event(self.Cancelled, cancelled_by=cancelled_by, reason=reason)

    def _require(self, allowed: set[TaskStatus], command: str) -> None:
        if self.status not in allowed:
            raise InvalidTaskStateError(self.id, self.status, command)
