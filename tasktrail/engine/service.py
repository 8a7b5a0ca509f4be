"""ExecutionService: the write side's use cases (load -> command -> save).

Every command that may race another (a cancel against a completion, two workers claiming one
task, the reaper against a slow worker) goes through ``decide``: the event store's optimistic
concurrency check is the arbiter, and the loser reloads and decides again.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, project_aggregate
from eventsourcing.persistence import IntegrityError

from tasktrail.engine.group_commit import GroupCommitWriter
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.errors import ConflictError, NotFoundError, ValidationError

T = TypeVar("T")
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c2a4e-3b8d-4f5a-9c7e-1d2b3a4c5e6f")
MAX_DECIDE_ATTEMPTS = 20


class TaskNotFoundError(NotFoundError):
    def __init__(self, task_id: UUID | str) -> None:
        super().__init__(f"no task with id {task_id}")
        self.task_id = task_id


class CancelOutcome(enum.Enum):
    """What a cancel request did: the HTTP layer answers 202 / 200 accordingly."""

    REQUESTED = "requested"
    CANCELLED = "cancelled"
    ALREADY_REQUESTED = "already_requested"
    ALREADY_CANCELLED = "already_cancelled"


def task_id_for(idempotency_key: str, submitted_by: str, kind: str) -> UUID:
    """The task id an idempotency key stands for: the same key always names the same task."""
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{submitted_by}\x1f{kind}\x1f{idempotency_key}")


class ExecutionService:
    """Start, inspect and steer task executions."""

    def __init__(
        self,
        store: TaskStore,
        known_kinds: Callable[[], Sequence[str]],
        *,
        submissions: GroupCommitWriter | None = None,
    ) -> None:
        """``submissions``: a group-commit writer new tasks are recorded through, so many
        concurrent submissions share a transaction (each call still returns after its commit)."""
        self.store = store
        self._known_kinds = known_kinds
        self._submissions = submissions

    # -- submission ------------------------------------------------------------------

    def start_execution(
        self,
        kind: str,
        parameters: dict[str, Any],
        *,
        submitted_by: str = "anonymous",
        idempotency_key: str | None = None,
        rerun_of: UUID | None = None,
    ) -> ExecutionTask:
        """Record a new PENDING task and return at once; a worker runs it later.

        With an ``idempotency_key``, a repeat returns the task the first call created.
        """
        if kind not in self._known_kinds():
            known = ", ".join(sorted(self._known_kinds()))
            raise ValidationError(f"unknown task kind {kind!r}; known: {known}", field="kind")
        if idempotency_key is None:
            task_id = uuid.uuid4()
        else:
            task_id = task_id_for(idempotency_key, submitted_by, kind)
            existing = self._find(task_id)
            if existing is not None:
                return self._same_submission(existing, parameters)
        task = ExecutionTask.submit(
            task_id,
            kind,
            parameters,
            submitted_by=submitted_by,
            idempotency_key=idempotency_key,
            rerun_of=rerun_of,
        )
        try:
            if self._submissions is None:
                self.store.save(task)
            else:
                self._submissions.save(task)
        except IntegrityError:
            # The same key, submitted at the same moment by another request.
            return self._same_submission(self.get_task(task_id), parameters)
        return task

    def rerun(
        self, task_id: UUID, *, submitted_by: str = "anonymous", idempotency_key: str | None = None
    ) -> ExecutionTask:
        """A new task with the first one's kind and parameters, linked to it."""
        first = self.get_task(task_id)
        return self.start_execution(
            first.kind,
            first.parameters,
            submitted_by=submitted_by,
            idempotency_key=idempotency_key,
            rerun_of=first.id,
        )

    @staticmethod
    def _same_submission(existing: ExecutionTask, parameters: dict[str, Any]) -> ExecutionTask:
        if existing.parameters != parameters:
            raise ConflictError(
                f"idempotency key already used for task {existing.id} with other parameters"
            )
        return existing

    # -- reading ---------------------------------------------------------------------

    def get_task(self, task_id: UUID) -> ExecutionTask:
        task = self._find(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def get_tasks(self, task_ids: Sequence[UUID]) -> dict[UUID, ExecutionTask]:
        """Several tasks, read in one query; ids of no task are left out."""
        found: dict[UUID, ExecutionTask] = {}
        for task_id, stored in self.store.stored_events_of(task_ids).items():
            events = [self.store.mapper.to_domain_event(event) for event in stored]
            task = project_aggregate(None, events)
            if isinstance(task, ExecutionTask):
                found[task_id] = task
        return found

    def state_at(self, task_id: UUID, version: int) -> ExecutionTask:
        """The task as it was right after its event number ``version``."""
        task = self.get_task(task_id)
        if not 1 <= version <= task.version:
            raise ValidationError(
                f"task {task_id} has versions 1..{task.version}, not {version}", field="at_version"
            )
        found: ExecutionTask = self.store.repository.get(task_id, version=version)
        return found

    def history(self, task_id: UUID) -> list[ExecutionTask.Event]:
        """The task's events in order."""
        self.get_task(task_id)
        return list(self.store.events.get(task_id))  # type: ignore[arg-type]

    def _find(self, task_id: UUID) -> ExecutionTask | None:
        try:
            task: object = self.store.repository.get(task_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(task, ExecutionTask):
            return None
        return task

    # -- commands --------------------------------------------------------------------

    def cancel_task(self, task_id: UUID, *, requested_by: str = "anonymous") -> CancelOutcome:
        """Cancel a PENDING task at once, or ask a RUNNING one to stop.

        Raises InvalidTaskStateError for a task that COMPLETED or FAILED.
        """

        def command(task: ExecutionTask) -> CancelOutcome:
            if task.status is TaskStatus.CANCELLED:
                return CancelOutcome.ALREADY_CANCELLED
            if task.status is TaskStatus.RUNNING and task.cancel_requested:
                return CancelOutcome.ALREADY_REQUESTED
            was_pending = task.status is TaskStatus.PENDING
            task.request_cancel(requested_by=requested_by, reason="requested")
            return CancelOutcome.CANCELLED if was_pending else CancelOutcome.REQUESTED

        return self.decide(task_id, command)

    def decide(self, task_id: UUID, command: Callable[[ExecutionTask], T]) -> T:
        """Load, apply ``command``, save; on a concurrent write, reload and decide again."""
        for _ in range(MAX_DECIDE_ATTEMPTS):
            task = self.get_task(task_id)
            outcome = command(task)
            try:
                self.store.save(task)
            except IntegrityError:
                continue
            return outcome
        raise ConflictError(f"task {task_id} kept changing; gave up after {MAX_DECIDE_ATTEMPTS}")
