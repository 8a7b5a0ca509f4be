"""On PostgreSQL one projector is active, the rest stand by, and a standby takes over when the
active one's process dies."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from projection_histories import projections, write_random_tasks
from support.processes import Fleet, Process, ProcessError, fleet, start_worker, wait_until

from tasktrail.cli import cli
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.locks import PROJECTOR_LOCK_KEY, AdvisoryLock, holder
from tasktrail.engine.log import read_log
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import TaskStatus
from tasktrail.projections import positions
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The lock is PostgreSQL's (SQLite has one writing process)."""
    return postgres_url


@pytest.fixture
def other_sql(settings: Settings) -> Iterator[sa.Engine]:
    """A second engine: another process's connections, as far as PostgreSQL can tell."""
    engine = create_sql_engine(settings)
    yield engine
    engine.dispose()


def session_state(sql: sa.Engine, backend_pid: int) -> str:
    with sql.connect() as connection:
        return str(
            connection.execute(
                sa.text("SELECT state FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
            ).scalar()
        )


def view_position(sql: sa.Engine) -> int:
    with sql.connect() as connection:
        return positions.read(connection, ["task_view"]).get("task_view", 0)


def test_only_the_lock_holder_applies_and_a_standby_takes_over_when_it_lets_go(
    store: TaskStore, sql: sa.Engine, other_sql: sa.Engine
) -> None:
    first = Projector(sql, projections(), lock_check_seconds=0)
    second = Projector(other_sql, projections(), lock_check_seconds=0)
    write_random_tasks(store, 5, seed=3)
    batch = read_log(store, after=0, limit=1000)

    assert first.handle(batch) == batch[-1].position
    assert first.active
    assert not second.active
    holding = holder(sql, PROJECTOR_LOCK_KEY)
    assert holding is not None
    assert holding.application_name.startswith("tasktrail projector")
    assert first.active  # a second check of a held lock
    assert session_state(sql, holding.backend_pid) == "idle", "the lock keeps a transaction open"

    write_random_tasks(store, 3, seed=4)
    more = read_log(store, after=batch[-1].position, limit=1000)
    # The standby applies nothing but keeps pace with the log (its follower is not held back).
    assert second.handle(batch) == batch[-1].position
    assert second.handle(more) == more[-1].position
    assert view_position(sql) == batch[-1].position

    first.release()
    # Taking over, it finds the view behind what it was handed: it answers the stored
    # position, so its follower hands it those events again, and it applies them.
    assert second.handle(more[len(more) // 2 :]) == batch[-1].position
    assert second.active
    assert not first.active
    assert view_position(sql) == batch[-1].position
    assert second.handle(more) == more[-1].position
    assert view_position(sql) == more[-1].position
    second.release()
    assert holder(sql, PROJECTOR_LOCK_KEY) is None


def test_a_released_lock_can_be_taken_by_another_session_at_once(
    sql: sa.Engine, other_sql: sa.Engine
) -> None:
    """Release unlocks before it closes the session: a closed connection's backend lets go of
    its locks only once it has exited, a moment later, and a standby trying in that moment
    stood by for another second (CI caught it)."""
    one = AdvisoryLock(sql, PROJECTOR_LOCK_KEY, "projector", check_seconds=0)
    other = AdvisoryLock(other_sql, PROJECTOR_LOCK_KEY, "projector", check_seconds=0)
    for _ in range(50):
        assert one.held()
        assert not other.held()
        one.release()
        assert other.held(), "the lock was still held after release() returned"
        other.release()
    assert holder(sql, PROJECTOR_LOCK_KEY) is None


def test_a_standby_asks_the_server_about_the_lock_once_a_second_not_at_every_batch(
    store: TaskStore, sql: sa.Engine, other_sql: sa.Engine
) -> None:
    active = Projector(sql, projections())
    standby = Projector(other_sql, projections())
    write_random_tasks(store, 20, seed=5)
    events = read_log(store, after=0, limit=10_000)
    assert active.handle(events[:1]) == events[0].position
    statements: list[str] = []
    sa.event.listen(other_sql, "before_cursor_execute", lambda *a: statements.append(a[2]))
    started = time.monotonic()
    for event in events:
        standby.handle([event])
    elapsed = time.monotonic() - started
    tries = [s for s in statements if "pg_try_advisory_lock" in s]
    assert len(events) >= 20
    assert len(tries) <= 1 + elapsed, (len(tries), elapsed)
    assert [s for s in statements if "pg_try_advisory_lock" not in s] == []
    active.release()
    standby.release()


def test_when_the_active_projectors_process_is_killed_another_takes_over_within_seconds(
    settings: Settings, store: TaskStore, sql: sa.Engine, tmp_path: Path
) -> None:
    service = ExecutionService(store, lambda: [SLEEP_KIND])
    env = {"lease_seconds": 2, "poll_seconds": 0.05}
    logs = tmp_path / "logs"
    with fleet(logs) as processes:
        workers = [
            processes.add(start_worker(f"w{n}", settings.database_url, logs, settings=env))
            for n in range(2)
        ]
        task = service.start_execution(SLEEP_KIND, {"seconds": 0})
        wait_until(lambda: viewed_status(sql, task.id) == "COMPLETED", 30, "a first run")
        first = wait_for_holder(sql, workers, processes)
        print(f"active projector: {first.name} (pid {first.pid})")

        first.kill9()
        killed_at = time.monotonic()
        survivor = next(w for w in workers if w is not first)
        assert wait_for_holder(sql, [survivor], processes, timeout=15) is survivor
        print(f"{survivor.name} took over {time.monotonic() - killed_at:.2f}s after the kill")
        after = service.start_execution(SLEEP_KIND, {"seconds": 0})
        wait_until(
            lambda: viewed_status(sql, after.id) == "COMPLETED", 30, "a run after the takeover"
        )
        assert service.get_task(after.id).status is TaskStatus.COMPLETED
        status = CliRunner().invoke(
            cli, ["--database-url", settings.database_url, "projections", "status"]
        )
        assert status.exit_code == 0, status.output
        assert "active projector: tasktrail projector" in status.output
        assert f":{survivor.pid} (backend" in status.output


def wait_for_holder(
    sql: sa.Engine, candidates: Sequence[Process], processes: Fleet, timeout: float = 30.0
) -> Process:
    """The candidate process that holds the projector lock, once one does."""
    by_pid = {c.pid: c for c in candidates}
    found: list[Process] = []

    def held() -> bool:
        lock = holder(sql, PROJECTOR_LOCK_KEY)
        if lock is not None and lock.process_id in by_pid:
            found.append(by_pid[lock.process_id])
            return True
        return False

    try:
        wait_until(held, timeout, "a projector lock holder")
    except ProcessError:
        pytest.fail(f"no candidate took the projector lock\n{processes.logs()}")
    return found[-1]


def viewed_status(sql: sa.Engine, task_id: object) -> str | None:
    with sql.connect() as connection:
        row = connection.execute(
            sa.text("SELECT status FROM task_view WHERE id = :id"), {"id": str(task_id)}
        ).first()
    return None if row is None else str(row[0])


def test_a_catch_up_applies_without_taking_the_lock(
    store: TaskStore, sql: sa.Engine, other_sql: sa.Engine
) -> None:
    service = ExecutionService(store, lambda: [SLEEP_KIND])
    service.start_execution(SLEEP_KIND, {"seconds": 0})
    one_off = Projector(sql, projections(), lock_check_seconds=0)

    assert one_off.catch_up(store) > 0
    assert view_position(sql) == store.head()
    assert holder(sql, PROJECTOR_LOCK_KEY) is None
    # So the live projector of another process takes it at once.
    live = Projector(other_sql, projections(), lock_check_seconds=0)
    try:
        assert live.active
    finally:
        live.release()
