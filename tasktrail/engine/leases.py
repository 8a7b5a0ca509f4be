"""Worker leases and the reaper: no task stays RUNNING after its worker died.

Each worker process has a row in ``workers`` and renews ``lease_until`` every lease/3 seconds.
The reaper fails RUNNING tasks whose worker's lease expired (or whose worker row is gone), with
reason ``worker_lost``. One reaper is active at a time: on PostgreSQL the one holding a session
advisory lock (when its process dies the lock goes with its connection, and another process
takes over at its next try); on SQLite there is one process, and a second reaper would only
lose the optimistic-concurrency race, never record a second terminal event.

The engine may not import the read side, so RUNNING tasks are found by a ``RunningTasks``
callable; ``running_from_task_view`` reads the ``task_view`` table by name.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from tasktrail.engine.locks import REAPER_LOCK_KEY, AdvisoryLock
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.settings import Settings

log = logging.getLogger(__name__)

WORKER_LOST = "worker_lost"
# Dead workers' rows are kept for a while (operators look at them), then removed.
FORGET_AFTER = timedelta(hours=1)

worker_metadata = sa.MetaData()

workers = sa.Table(
    "workers",
    worker_metadata,
    sa.Column("worker_id", sa.String(200), primary_key=True),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_workers_lease_until", "lease_until"),
)

RunningTasks = Callable[[], Sequence[tuple[UUID, str | None]]]


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


# The leases this process holds now: a row with our pid but another id is a previous process
# that had our pid (a container restarted as pid 1) unless it is one of these.
_held_here: set[str] = set()


class Lease:
    """One worker process's row in ``workers``, renewed by a heartbeat thread."""

    def __init__(self, sql: sa.Engine, settings: Settings, worker_id: str) -> None:
        self.sql = sql
        self.settings = settings
        self.worker_id = worker_id
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def interval(self) -> float:
        return self.settings.lease_seconds / 3

    def register(self) -> None:
        moment = now()
        row = {
            "worker_id": self.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": moment,
            "heartbeat_at": moment,
            "lease_until": moment + timedelta(seconds=self.settings.lease_seconds),
        }
        with self.sql.begin() as connection:
            connection.execute(workers.delete().where(workers.c.worker_id == self.worker_id))
            connection.execute(workers.insert().values(row))
        _held_here.add(self.worker_id)

    def renew(self) -> None:
        """Extend the lease; a row removed meanwhile (taken for dead) is registered again."""
        moment = now()
        until = moment + timedelta(seconds=self.settings.lease_seconds)
        with self.sql.begin() as connection:
            renewed = connection.execute(
                workers.update()
                .where(workers.c.worker_id == self.worker_id)
                .values(heartbeat_at=moment, lease_until=until)
            ).rowcount
        if not renewed:
            log.warning("worker %s had no lease row; registering again", self.worker_id)
            self.register()

    def start(self) -> None:
        self.register()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing; ``release`` removes the row (a clean shutdown, nothing running)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        _held_here.discard(self.worker_id)
        if release:
            try:
                with self.sql.begin() as connection:
                    connection.execute(
                        workers.delete().where(workers.c.worker_id == self.worker_id)
                    )
            except sa.exc.SQLAlchemyError:
                log.warning("could not remove worker %s; its lease will expire", self.worker_id)

    def _beat(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.renew()
            except sa.exc.SQLAlchemyError as error:
                log.warning("heartbeat of %s failed: %s", self.worker_id, error)


def running_from_task_view(sql: sa.Engine) -> RunningTasks:
    """RUNNING tasks and their workers, as the task view (read side) shows them."""
    statement = sa.text("SELECT id, worker_id FROM task_view WHERE status = 'RUNNING'")

    def running() -> list[tuple[UUID, str | None]]:
        with sql.connect() as connection:
            rows = connection.execute(statement).all()
        return [(UUID(str(row[0])), row[1]) for row in rows]

    return running


def live_workers(sql: sa.Engine, *, at: datetime | None = None) -> set[str]:
    """Workers whose lease has not expired."""
    moment = at or now()
    with sql.connect() as connection:
        rows = connection.execute(sa.select(workers.c.worker_id, workers.c.lease_until)).all()
    return {row[0] for row in rows if aware(row[1]) >= moment}


def fail_lost(
    service: ExecutionService,
    task_id: UUID,
    worker_id: str | None,
    why: str = "stopped renewing its lease",
) -> bool:
    """Record Failed(worker_lost) if the task still runs on ``worker_id``; True if recorded."""

    def command(task: ExecutionTask) -> bool:
        if task.status is not TaskStatus.RUNNING or task.worker_id != worker_id:
            return False
        task.fail(
            "WorkerLost",
            f"worker {worker_id} {why}",
            retryable=True,
            reason=WORKER_LOST,
        )
        return True

    return service.decide(task_id, command)


class Reaper:
    """Fails the tasks of workers whose lease expired; one active per database."""

    def __init__(
        self,
        service: ExecutionService,
        sql: sa.Engine,
        settings: Settings,
        running: RunningTasks | None = None,
    ) -> None:
        self.service = service
        self.sql = sql
        self.settings = settings
        self.running = running or running_from_task_view(sql)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = AdvisoryLock(sql, REAPER_LOCK_KEY, "reaper")

    def reap_once(self) -> list[UUID]:
        """Fail RUNNING tasks whose worker is not live; returns the tasks failed."""
        alive = live_workers(self.sql)
        failed = []
        for task_id, worker_id in self.running():
            if worker_id in alive:
                continue
            if fail_lost(self.service, task_id, worker_id):
                log.warning("task %s failed: worker %s lost", task_id, worker_id)
                failed.append(task_id)
        self._forget_dead_workers()
        return failed

    def _forget_dead_workers(self) -> None:
        with self.sql.begin() as connection:
            connection.execute(workers.delete().where(workers.c.lease_until < now() - FORGET_AFTER))

    # -- one active reaper -----------------------------------------------------------------

    def holds_lock(self) -> bool:
        """True when this reaper may reap (it holds, or just took, the advisory lock)."""
        return self.lock.held()

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.lock.release()

    @property
    def interval(self) -> float:
        return self.settings.lease_seconds / 3

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                if self.holds_lock():
                    self.reap_once()
            except Exception:
                log.exception("reaper pass failed; retrying in %.1fs", self.interval)


def fail_orphans_at_start_up(reaper: Reaper, own_worker_id: str | None = None) -> list[UUID]:
    """Plan 8.3: the embedded single process fails the RUNNING tasks it left behind.

    Workers of this host whose process is gone count as lost at once, without waiting for
    their lease (the previous run of this very server, typically).
    """
    with reaper.sql.connect() as connection:
        rows = connection.execute(
            sa.select(workers.c.worker_id, workers.c.hostname, workers.c.pid)
        ).all()
    gone = [
        worker_id
        for worker_id, hostname, pid in rows
        if worker_id != own_worker_id
        and worker_id not in _held_here
        and hostname == socket.gethostname()
        and not _process_alive(pid)
    ]
    if gone:
        with reaper.sql.begin() as connection:
            connection.execute(workers.delete().where(workers.c.worker_id.in_(gone)))
    return reaper.reap_once()


def fail_runs_of_exited_process(reaper: Reaper, pid: int) -> list[UUID]:
    """Fail at once the RUNNING tasks of a worker process of this host that has exited
    (``pid``: a child whose exit its parent just saw), instead of when its lease expires."""
    of_process = sa.and_(workers.c.hostname == socket.gethostname(), workers.c.pid == pid)
    with reaper.sql.begin() as connection:
        exited = set(connection.execute(sa.select(workers.c.worker_id).where(of_process)).scalars())
        connection.execute(workers.delete().where(of_process))
    failed = [
        task_id
        for task_id, worker_id in reaper.running()
        if worker_id in exited
        and fail_lost(reaper.service, task_id, worker_id, f"exited (process {pid} ended)")
    ]
    for task_id in failed:
        log.warning("task %s failed: its worker process %d exited", task_id, pid)
    return failed + reaper.reap_once()


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a previous process that had our pid cannot still be running as us
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
