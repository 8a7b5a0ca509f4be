"""The worker pool: claims waiting tasks, records Started, runs handlers, records the outcome.

One dispatcher thread claims tasks in batches, enough for every worker thread and as many
again in hand (waking on the follower's hint that something was queued, polling otherwise);
each worker thread starts its task (appending Started with optimistic concurrency decides who
runs it, so a double claim is harmless), runs the handler with a TaskContext, and records
Completed, Failed or Cancelled. Every event goes through the group-commit writer, so the
events of many tasks share one transaction. A terminal event is retried with a bounded
back-off while the database is unreachable, so a blip never loses a result. Tasks in hand
that were not started are given back when the pool stops.

A kind's timeout is watched by the dispatcher: at the deadline it records Failed (reason
``timeout``) whatever the handler is doing; the handler stops at its next progress point.

Cancellation reaches a running handler two ways: the follower feeds cancel requests to
``note_cancel_requested`` (``WorkerSignals``), and, as a fallback, the context looks for a
``task.cancel_requested`` row of its task at most every ``CANCEL_CHECK_SECONDS``.
"""

from __future__ import annotations

import logging
import queue as queues
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import IntegrityError

from tasktrail.engine.group_commit import GroupCommitWriter
from tasktrail.engine.handlers import (
    HandlerRegistry,
    Registration,
    TaskCancelled,
    TaskContext,
    TaskLost,
    TaskTimedOut,
)
from tasktrail.engine.leases import WORKER_LOST, Lease, RunningTasks, new_worker_id
from tasktrail.engine.log import LogEvent
from tasktrail.engine.queue import WorkQueue
from tasktrail.engine.service import ExecutionService, TaskNotFoundError
from tasktrail.engine.store import EVENTS_TABLE
from tasktrail.engine.task import ExecutionTask, Progress, TaskStatus
from tasktrail.errors import TasktrailError
from tasktrail.settings import Settings

log = logging.getLogger(__name__)

CANCEL_CHECK_SECONDS = 0.2
MAX_START_ATTEMPTS = 10
TERMINAL_RETRY_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 5.0
MAX_ERROR_MESSAGE = 2000


class ProgressCoalescer:
    """Decides which progress reports become events: at most one per interval, except that a
    phase change is always recorded; the last report held back is flushed before the end."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.recorded: Progress | None = None
        self.pending: Progress | None = None
        self._recorded_at = float("-inf")

    def offer(self, progress: Progress) -> Progress | None:
        """The progress to record now, or None to hold it back."""
        last = self.recorded
        if last == progress:
            return None
        phase_changed = last is None or last.phase != progress.phase
        if phase_changed or self.clock() - self._recorded_at >= self.interval:
            return self._record(progress)
        self.pending = progress
        return None

    def flush(self) -> Progress | None:
        """The held-back progress, if any (to record before the terminal event)."""
        held, self.pending = self.pending, None
        if held is None or held == self.recorded:
            return None
        return self._record(held)

    def _record(self, progress: Progress) -> Progress:
        self.recorded = progress
        self.pending = None
        self._recorded_at = self.clock()
        return progress


def backoff(failures: int) -> float:
    ceiling = min(MAX_BACKOFF_SECONDS, 0.05 * 2 ** min(failures, 10))
    return random.uniform(ceiling / 2, ceiling)


class CancelLookup:
    """Whether a task's cancellation was recorded, read cheaply from the events table."""

    def __init__(self, sql: sa.Engine, *, sqlite: bool) -> None:
        self.sql = sql
        self.sqlite = sqlite
        self.statement = sa.text(
            f"SELECT 1 FROM {EVENTS_TABLE} WHERE originator_id = :id "
            "AND topic = 'task.cancel_requested' LIMIT 1"
        )

    def __call__(self, task_id: UUID) -> bool:
        key: Any = task_id.hex if self.sqlite else task_id
        with self.sql.connect() as connection:
            return connection.execute(self.statement, {"id": key}).first() is not None


@dataclass
class _Run:
    """One task this pool is running."""

    task: ExecutionTask
    registration: Registration
    coalescer: ProgressCoalescer
    deadline: float | None
    cancel_seen: bool = False
    # The task was loaded without a cancel request when it started: no need to look at once.
    checked_at: float = field(default_factory=time.monotonic)
    expired: bool = False
    # Events collected from the task but not recorded yet (a save that failed for a while).
    unsaved: list[Any] = field(default_factory=list)

    def collect(self) -> list[Any]:
        """The events to record next: those held back, then the task's new ones."""
        self.unsaved.extend(self.task.collect_events())
        return self.unsaved

    @property
    def timeout_message(self) -> str:
        timeout = self.registration.timeout_seconds
        return f"{self.task.kind} ran past its timeout of {timeout:g} s"


class WorkerPool:
    """N worker threads and a dispatcher, in this process."""

    def __init__(
        self,
        service: ExecutionService,
        registry: HandlerRegistry,
        queue: WorkQueue,
        settings: Settings,
        *,
        worker_id: str | None = None,
        concurrency: int = 4,
        writer: GroupCommitWriter | None = None,
        lease: Lease | None = None,
        cancel_lookup: Callable[[UUID], bool] | None = None,
        running: RunningTasks | None = None,
    ) -> None:
        self.service = service
        self.registry = registry
        self.queue = queue
        self.settings = settings
        self.worker_id = worker_id or (lease.worker_id if lease else new_worker_id())
        self.concurrency = max(1, concurrency)
        # A writer handed in is shared (the process's runtime starts and stops it).
        self._owns_writer = writer is None
        self.writer = writer or GroupCommitWriter(service.store)
        self.lease = lease
        self.cancel_lookup = cancel_lookup
        self.running = running
        # Tasks from their claim until their run ends here: a RUNNING task of this worker
        # that is not among them has no thread running it (see _sweep_lost_runs).
        self._in_hand: set[UUID] = set()
        self._in_hand_lock = threading.Lock()
        self._suspects: set[UUID] = set()
        self._next_sweep = 0.0
        self._cancels: set[UUID] = set()
        self._cancels_lock = threading.Lock()
        # Claimed tasks for the worker threads, each with the task as read after its claim.
        self._work: queues.Queue[tuple[UUID, ExecutionTask | None]] = queues.Queue()
        self._runs: dict[UUID, _Run] = {}
        self._runs_lock = threading.Lock()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.finished = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stopping.clear()
        if self._owns_writer:
            self.writer.start()
        if self.lease is not None:
            self.lease.start()
        self._spawn(self._dispatch, "dispatcher")
        for number in range(self.concurrency):
            self._spawn(self._serve, f"worker-{number}")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"tasktrail-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming, give running handlers up to ``timeout`` to end, then stop.

        Tasks still running keep the lease unreleased, so the reaper fails them.
        """
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        still_running = any(thread.is_alive() for thread in self._threads)
        self._threads = []
        self._release_claims_in_hand()
        if self._owns_writer:
            self.writer.stop()
        if self.lease is not None:
            self.lease.stop(release=not still_running)

    def _release_claims_in_hand(self) -> None:
        """Give back the tasks claimed but not started, so another worker takes them now."""
        while True:
            try:
                task_id, _ = self._work.get_nowait()
            except queues.Empty:
                return
            self._release(task_id)
            with self._busy_lock:
                self._busy -= 1
            with self._in_hand_lock:
                self._in_hand.discard(task_id)

    def wake(self) -> None:
        """Something was queued: claim now instead of at the next poll."""
        self._wake.set()

    def note_cancel_requested(self, task_id: UUID) -> None:
        """The follower saw a cancel request for ``task_id``."""
        with self._cancels_lock:
            self._cancels.add(task_id)

    @property
    def busy(self) -> int:
        with self._busy_lock:
            return self._busy

    # -- dispatching --------------------------------------------------------------------

    def _dispatch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._expire_overdue()
            if self.running is not None and time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.settings.lease_seconds / 3
                self._sweep_lost_runs()
            free = self._claimable()
            claimed: Sequence[UUID] = ()
            if free > 0:
                try:
                    claimed = self.queue.claim(self.worker_id, self.registry.kinds(), free)
                    failures = 0
                except Exception as error:
                    failures += 1
                    log.warning("claiming failed (%s); retrying", error)
                    self._stopping.wait(backoff(failures))
                    continue
            loaded = self._load(claimed)
            for task_id in claimed:
                with self._busy_lock:
                    self._busy += 1
                with self._in_hand_lock:
                    self._in_hand.add(task_id)
                self._work.put((task_id, loaded.get(task_id)))
            if not claimed:
                self._wake.wait(self._idle_wait())
                self._wake.clear()

    def _load(self, claimed: Sequence[UUID]) -> dict[UUID, ExecutionTask]:
        """The claimed tasks, read in one query for the worker threads (each would otherwise
        read its own). A task changed after this read is no harm: its Started then clashes
        with the newer event, and the thread reads it again. On an error the threads read
        them one by one."""
        if not claimed:
            return {}
        try:
            return self.service.get_tasks(claimed)
        except Exception as error:
            log.warning("reading the claimed tasks failed (%s); each is read alone", error)
            return {}

    def _claimable(self) -> int:
        """How many tasks to claim now: enough to keep every thread busy and as many again
        waiting in hand (so a thread that ends takes its next task without a round trip),
        claimed in batches once half the tasks in hand are gone."""
        if self._work.qsize() > self.concurrency // 2:
            return 0
        return max(0, 2 * self.concurrency - self.busy)

    def _idle_wait(self) -> float:
        """Until the next poll, or sooner when a running task's deadline comes first."""
        with self._runs_lock:
            deadlines = [r.deadline for r in self._runs.values() if r.deadline and not r.expired]
        until_deadline = min(deadlines, default=float("inf")) - time.monotonic()
        return max(0.0, min(self.settings.poll_seconds, until_deadline + 0.001))

    def _expire_overdue(self) -> None:
        """Fail the tasks that ran past their kind's timeout, at once: their handlers may be
        blocked where no progress point tells them to stop (a thread cannot be killed)."""
        moment = time.monotonic()
        with self._runs_lock:
            overdue = [
                r
                for r in self._runs.values()
                if r.deadline and r.deadline < moment and not r.expired
            ]
        for run in overdue:
            run.expired = True
            try:
                if self.service.decide(run.task.id, self._timed_out_command(run)):
                    log.warning("task %s failed: %s", run.task.id, run.timeout_message)
            except Exception as error:
                run.expired = False  # try again at the next turn
                log.warning("could not fail overdue task %s: %s", run.task.id, error)

    def _sweep_lost_runs(self) -> None:
        """Fail the tasks recorded RUNNING on this worker that no thread here runs.

        The safety net under every path where a run ends without its terminal event (a
        start or an end whose recording gave up while the database was away): the reaper
        spares them, as this worker's lease is alive. A task must look so on two sweeps in
        a row, a lease third apart, so one whose run just began or just ended (the task view
        behind the log) is left alone; the decision is taken on the task itself.
        """
        assert self.running is not None
        try:
            rows = self.running()
        except Exception as error:
            log.warning("looking for lost runs failed: %s", error)
            return
        with self._in_hand_lock:
            in_hand = set(self._in_hand)
        suspects = {t for t, worker in rows if worker == self.worker_id and t not in in_hand}
        confirmed, self._suspects = suspects & self._suspects, suspects
        for task_id in confirmed:
            try:
                if self.service.decide(task_id, self._lost_run_command):
                    log.error("task %s failed: worker %s lost its run", task_id, self.worker_id)
            except Exception as error:
                log.warning("could not fail lost run %s: %s", task_id, error)

    def _lost_run_command(self, task: ExecutionTask) -> bool:
        if task.status is not TaskStatus.RUNNING or task.worker_id != self.worker_id:
            return False
        with self._in_hand_lock:
            if task.id in self._in_hand:
                return False
        task.fail(
            "RunLost",
            f"worker {self.worker_id} recorded the start of this run but is not running it",
            retryable=True,
            reason=WORKER_LOST,
        )
        return True

    def _timed_out_command(self, run: _Run) -> Callable[[ExecutionTask], bool]:
        """Fail the task if it is still this run (RUNNING here, in the same attempt)."""
        attempt = run.task.attempt

        def command(task: ExecutionTask) -> bool:
            if task.status is not TaskStatus.RUNNING or task.worker_id != self.worker_id:
                return False
            if task.attempt != attempt:
                return False
            task.fail("TaskTimedOut", run.timeout_message, reason="timeout")
            return True

        return command

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                task_id, loaded = self._work.get(timeout=0.2)
            except queues.Empty:
                continue
            try:
                self.run_task(task_id, loaded)
            except Exception:
                log.exception("worker %s failed running task %s", self.worker_id, task_id)
            finally:
                with self._busy_lock:
                    self._busy -= 1
                with self._in_hand_lock:
                    self._in_hand.discard(task_id)
                with self._cancels_lock:
                    self._cancels.discard(task_id)
                self._wake.set()

    # -- one task -----------------------------------------------------------------------

    def run_task(self, task_id: UUID, loaded: ExecutionTask | None = None) -> None:
        """Start ``task_id`` if it is still waiting, run its handler, record the outcome.

        ``loaded``: the task as read after its claim (read here when None).
        """
        task = self._start(task_id, loaded)
        if task is None:
            self._release(task_id)
            return
        registration = self.registry.get(task.kind)
        timeout = registration.timeout_seconds
        run = _Run(
            task=task,
            registration=registration,
            coalescer=ProgressCoalescer(self.settings.progress_interval_seconds),
            deadline=time.monotonic() + timeout if timeout else None,
        )
        context = TaskContext(
            task.id,
            task.attempt,
            report=lambda c, t, p, m: self._report(run, Progress(c, t, p, m)),
            cancel_requested=lambda: self._cancel_requested(run),
            deadline=run.deadline,
        )
        with self._runs_lock:
            self._runs[task.id] = run
        try:
            outcome = self._outcome(run, context)
            run.expired = True  # the handler is done: its own outcome is recorded, not a timeout
            self._finish(run, outcome)
        finally:
            with self._runs_lock:
                self._runs.pop(task.id, None)

    def _start(self, task_id: UUID, loaded: ExecutionTask | None = None) -> ExecutionTask | None:
        """Record Started for ``task_id`` if it still waits; the task, or None if not ours.

        A failed save is not taken at its word: a commit whose answer was lost (the database
        restarted, the connection broke) raised an error, or, retried, a conflict with its
        own event. So after either the task is read again, and a RUNNING task of this worker
        in the attempt just tried is ours to run. Left unrun, it would stay RUNNING under a
        live lease that the reaper never questions.
        """
        tried: int | None = None  # the attempt number of the Started last sent
        conflicts = failures = 0
        give_up = time.monotonic() + TERMINAL_RETRY_SECONDS
        while conflicts < MAX_START_ATTEMPTS:
            try:
                task, loaded = loaded or self.service.get_task(task_id), None
            except TaskNotFoundError:
                return None
            except Exception as error:
                failures += 1
                if tried is None or time.monotonic() > give_up:
                    raise  # nothing sent yet (or for too long): the claim expires by itself
                log.warning("reading %s after its start failed (%s); retrying", task_id, error)
                time.sleep(backoff(failures))
                continue
            if tried is not None and self._is_our_run(task, tried):
                log.info("task %s: its Started was recorded though the save failed", task_id)
                return task
            if task.status is not TaskStatus.PENDING or task.cancel_requested:
                return None
            task.start(self.worker_id)
            tried = task.attempt
            try:
                self.writer.record(task.collect_events())
            except IntegrityError:
                conflicts += 1  # someone else changed it first (or ours went in): look again
                continue
            except Exception as error:
                failures += 1
                if time.monotonic() > give_up:
                    raise
                log.warning("recording the start of %s failed (%s); retrying", task_id, error)
                time.sleep(backoff(failures))
                continue
            return task
        return None

    def _is_our_run(self, task: ExecutionTask, attempt: int) -> bool:
        return (
            task.status is TaskStatus.RUNNING
            and task.worker_id == self.worker_id
            and task.attempt == attempt
        )

    def _release(self, task_id: UUID) -> None:
        try:
            self.queue.release(task_id)
        except Exception as error:
            log.warning("could not release claim on %s: %s", task_id, error)

    def _outcome(self, run: _Run, context: TaskContext) -> Callable[[ExecutionTask], None] | None:
        """Run the handler; the command that ends the task (None: someone else ended it)."""
        params = dict(run.task.parameters)
        try:
            if run.registration.validate is not None:
                run.registration.validate(params)
            result = run.registration.handler(params, context)
            if context.timed_out:
                raise TaskTimedOut(run.timeout_message)
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
        except TaskCancelled:
            return lambda task: task.cancel(cancelled_by=self.worker_id, reason="cancel requested")
        except TaskLost:
            return None
        except TaskTimedOut:
            message = run.timeout_message
            return lambda task: task.fail("TaskTimedOut", message, reason="timeout")
        except Exception as error:
            log.exception("task %s (%s) failed", run.task.id, run.task.kind)
            error_type, message = type(error).__name__, str(error)[:MAX_ERROR_MESSAGE]
            return lambda task: task.fail(error_type, message, reason="error")
        return lambda task: task.complete(result)

    # -- progress and cancellation --------------------------------------------------------

    def _cancel_requested(self, run: _Run) -> bool:
        if run.cancel_seen or run.task.cancel_requested:
            return True
        with self._cancels_lock:
            if run.task.id in self._cancels:
                run.cancel_seen = True
                return True
        if self.cancel_lookup is not None:
            moment = time.monotonic()
            if moment - run.checked_at >= CANCEL_CHECK_SECONDS:
                run.checked_at = moment
                try:
                    run.cancel_seen = self.cancel_lookup(run.task.id)
                except Exception as error:
                    log.warning("cancel check of %s failed: %s", run.task.id, error)
        return run.cancel_seen

    def _report(self, run: _Run, progress: Progress) -> None:
        due = run.coalescer.offer(progress)
        if due is not None:
            self._record_progress(run, due)

    def _record_progress(self, run: _Run, progress: Progress) -> None:
        for _ in range(MAX_START_ATTEMPTS):
            run.task.update_progress(
                progress.current, progress.total, progress.phase, progress.message
            )
            try:
                self.writer.record(run.collect())
                run.unsaved.clear()
                return
            except IntegrityError:
                self._reload(run)
            except Exception as error:
                # The event is held on the run and goes with the next save.
                log.warning("progress of %s not recorded yet: %s", run.task.id, error)
                return

    def _reload(self, run: _Run) -> None:
        """Another writer appended to the task: take its events, stop if it must stop."""
        run.unsaved.clear()
        run.task = self.service.get_task(run.task.id)
        if run.task.status is not TaskStatus.RUNNING:
            raise TaskLost(f"task {run.task.id} is {run.task.status.value}")
        if run.task.cancel_requested:
            run.cancel_seen = True
            raise TaskCancelled(f"task {run.task.id} was cancelled")

    # -- the terminal event -------------------------------------------------------------

    def _finish(self, run: _Run, outcome: Callable[[ExecutionTask], None] | None) -> None:
        if outcome is None:
            return
        held = run.coalescer.flush()
        task = run.task
        if held is not None and task.status is TaskStatus.RUNNING:
            task.update_progress(held.current, held.total, held.phase, held.message)
        if task.status is TaskStatus.RUNNING:
            outcome(task)
        self._save_terminal(run, outcome)
        self.finished += 1

    def _save_terminal(self, run: _Run, outcome: Callable[[ExecutionTask], None]) -> None:
        """Save until recorded, someone else ended the task, or the retry time is up."""
        give_up = time.monotonic() + TERMINAL_RETRY_SECONDS
        failures = 0
        while True:
            try:
                self.writer.record(run.collect())
                run.unsaved.clear()
                return
            except IntegrityError:
                if not self._redecide(run, outcome):
                    return
            except Exception as error:
                failures += 1
                if time.monotonic() > give_up:
                    log.error("gave up recording the end of %s: %s", run.task.id, error)
                    return
                log.warning("recording the end of %s failed (%s); retrying", run.task.id, error)
                time.sleep(backoff(failures))

    def _redecide(self, run: _Run, outcome: Callable[[ExecutionTask], None]) -> bool:
        """Reload after a conflict and apply ``outcome`` again; False if already ended."""
        failures = 0
        run.unsaved.clear()
        while True:
            try:
                run.task = self.service.get_task(run.task.id)
                break
            except TasktrailError:
                return False
            except Exception as error:
                failures += 1
                if failures > 50:
                    log.error("cannot reload %s: %s", run.task.id, error)
                    return False
                time.sleep(backoff(failures))
        if run.task.status.is_terminal:
            return False
        outcome(run.task)
        return True


class WorkerSignals:
    """The follower's consumer that wakes a pool when tasks are queued and passes on cancel
    requests. It only cares about what happens from now on, so it starts at the head."""

    def __init__(self, pool: WorkerPool, head: Callable[[], int]) -> None:
        self.pool = pool
        self.name = f"worker-signals:{pool.worker_id}"
        self._head = head

    def position(self) -> int:
        return self._head()

    def handle(self, batch: Sequence[LogEvent]) -> None:
        for event in batch:
            if event.topic == "task.created":
                self.pool.wake()
            elif event.topic == "task.cancel_requested":
                self.pool.note_cancel_requested(event.originator_id)
        return
