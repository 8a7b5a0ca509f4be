"""The SQLite write lock: the log's writer goes before the other waiters (but not
twice in a row while they wait), a take is bounded, and SQLAlchemy's transactions give it
back however they end, and writers of other processes on the same file wait for it too."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.processes import wait_until

from tasktrail.engine.database import WriteLock, create_sql_engine, sqlite_write_lock
from tasktrail.settings import Settings


def order_after_release(holder_first: bool) -> list[str]:
    """Who goes next when the holder (a first taker or not) releases, with another writer
    and then the log writer waiting."""
    lock = WriteLock()
    order: list[str] = []
    lock.acquire(first=holder_first)

    def other() -> None:
        lock.acquire()
        order.append("other")
        lock.release()

    def log_writer() -> None:
        with lock.first():
            order.append("log writer")

    waiting_other = threading.Thread(target=other)
    waiting_other.start()
    wait_until(lambda: lock.waiting == 1, 5, "the other writer to wait", interval=0.005)
    waiting_writer = threading.Thread(target=log_writer)
    waiting_writer.start()
    wait_until(lambda: lock.waiting == 2, 5, "the log writer to wait", interval=0.005)
    lock.release()
    waiting_other.join(5)
    waiting_writer.join(5)
    return order


def test_a_first_taker_goes_before_those_already_waiting() -> None:
    assert order_after_release(holder_first=False) == ["log writer", "other"]


def test_after_a_first_taker_those_waiting_otherwise_go_next() -> None:
    """A log writer that never pauses cannot starve the others: priority, not twice in a row."""
    assert order_after_release(holder_first=True) == ["other", "log writer"]


def test_a_take_gives_up_after_its_timeout() -> None:
    lock = WriteLock()
    assert lock.acquire(timeout=0)
    assert not lock.acquire(timeout=0.05)
    lock.release()
    assert lock.acquire(timeout=0)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'lock.db'}")
    engine = create_sql_engine(settings)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
    return engine


def free(engine: sa.Engine) -> bool:
    lock = sqlite_write_lock(engine.url.database or "")
    taken = lock.acquire(timeout=0)
    if taken:
        lock.release()
    return taken


def insert_then_fail(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (2)")
        raise RuntimeError("rolled back")


def run_in_transaction(engine: sa.Engine, statement: str) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(statement)


def test_a_transaction_holds_the_lock_until_it_commits_or_rolls_back(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not free(engine)
    assert free(engine)

    with pytest.raises(RuntimeError):
        insert_then_fail(engine)
    assert free(engine)

    with pytest.raises(sa.exc.OperationalError):
        run_in_transaction(engine, "INSERT INTO no_such_table VALUES (3)")
    assert free(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT n FROM t").scalars().all() == [1]
    engine.dispose()


HOLD_IN_OTHER_PROCESS = """
import sys, time
from pathlib import Path
from tasktrail.engine.database import sqlite_write_lock
lock = sqlite_write_lock(sys.argv[1])
lock.acquire()
Path(sys.argv[2]).write_text("held")
time.sleep(0.5)
Path(sys.argv[2]).write_text("released")
lock.release()
time.sleep(5)
"""


def test_a_writer_waits_for_the_holder_in_another_process(tmp_path: Path) -> None:
    """The lock is also held among processes (a flock beside the file): a take waits until
    the other process has released, and the lock file lies next to the database."""
    database, state = tmp_path / "shared.db", tmp_path / "state"
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_OTHER_PROCESS, str(database), str(state)]
    )
    try:
        wait_until(lambda: state.exists(), 30, "the other process to hold the lock")
        lock = sqlite_write_lock(str(database))
        assert lock.acquire(timeout=10)
        try:
            assert state.read_text() == "released"
        finally:
            lock.release()
        assert (tmp_path / "shared.db-lock").exists()
    finally:
        other.kill()
        other.wait()


def test_an_in_memory_database_has_no_lock_between_processes() -> None:
    assert sqlite_write_lock(":memory:").across is None
    assert sqlite_write_lock("").across is None


def file_lock_free(path: Path) -> bool:
    """Whether another open file (as another process would have) can take the flock now."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # closing it drops the flock it took
    return True


def test_a_take_that_times_out_frees_the_file_lock_for_other_processes(tmp_path: Path) -> None:
    """A release missed in this process keeps the others out one busy timeout, not for ever."""
    database = tmp_path / "missed.db"
    lock = sqlite_write_lock(str(database))
    assert lock.acquire(timeout=1)  # and never released: the missed release
    lock_file = tmp_path / "missed.db-lock"
    assert not file_lock_free(lock_file)
    assert not lock.acquire(timeout=0.05)
    assert file_lock_free(lock_file)
