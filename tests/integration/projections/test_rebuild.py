"""Rebuilds: blue/green and in place give the fold of the log, even with live writes."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from projection_histories import (
    all_task_ids,
    folded,
    grouped_counts,
    projections,
    viewed,
    write_random_tasks,
)

from tasktrail.cli import cli
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.outbox import Follower
from tasktrail.engine.store import TaskStore
from tasktrail.projections import positions
from tasktrail.projections.projector import Projector
from tasktrail.projections.queries import counts_by_status, list_tasks
from tasktrail.projections.rebuild import Rebuild
from tasktrail.projections.task_view import TaskViewProjection, task_view
from tasktrail.settings import Settings


class Interrupted(Exception):
    pass


def table_names(sql: sa.Engine) -> set[str]:
    return set(sa.inspect(sql).get_table_names())


@pytest.mark.parametrize("in_place", [False, True], ids=["blue_green", "in_place"])
def test_a_rebuild_during_live_writes_ends_equal_to_the_fold_of_the_log(
    store: TaskStore, sql: sa.Engine, settings: Settings, in_place: bool
) -> None:
    write_random_tasks(store, 60, seed=11)
    follower = Follower(store, settings, batch_size=20)
    follower.add_consumer(Projector(sql, projections()))
    follower.start()
    stop_writing = threading.Event()

    def keep_writing() -> None:
        seed = 100
        while not stop_writing.is_set():
            write_random_tasks(store, 3, seed=seed)
            seed += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        job = Rebuild(sql, store, TaskViewProjection(), batch_size=7)
        report = job.in_place() if in_place else job.blue_green()
        stop_writing.set()
        writer.join(timeout=60)
        assert follower.wait_for_head(timeout=30)
    finally:
        stop_writing.set()
        follower.stop()
    assert report.events > 0
    assert viewed(sql) == folded(store, all_task_ids(store))
    assert counts_by_status(sql) == grouped_counts(sql)
    assert not any(name.endswith("__rebuild") for name in table_names(sql))


def test_reads_during_a_blue_green_rebuild_come_from_the_old_tables_and_a_killed_one_leaves_them(
    store: TaskStore, sql: sa.Engine
) -> None:
    ids = write_random_tasks(store, 40, seed=5)
    Projector(sql, projections()).catch_up(store)
    before = list_tasks(sql, limit=500)
    answers = []

    def interrupt_half_way(done: int, total: int) -> None:
        answers.append(list_tasks(sql, limit=500))
        if done * 2 >= total:
            raise Interrupted

    job = Rebuild(sql, store, TaskViewProjection(), batch_size=10, on_progress=interrupt_half_way)
    with pytest.raises(Interrupted):
        job.blue_green()
    assert answers
    assert all(a.items == before.items for a in answers)
    assert list_tasks(sql, limit=500).items == before.items
    # A rerun starts cleanly over the stale shadow tables.
    Rebuild(sql, store, TaskViewProjection(), batch_size=10).blue_green()
    assert viewed(sql) == folded(store, ids)
    with sql.connect() as connection:
        assert positions.read(connection)["task_view"] == store.head()


def test_the_cli_rebuilds_and_reports_status(settings: Settings, store: TaskStore) -> None:
    write_random_tasks(store, 10, seed=3)
    runner = CliRunner()
    url = ["--database-url", settings.database_url]
    for _ in range(2):  # the second swap must not trip over names the first one left
        rebuilt = runner.invoke(cli, [*url, "projections", "rebuild", "task_view"])
        assert rebuilt.exit_code == 0, rebuilt.output
    assert "events/s" in rebuilt.output
    status = runner.invoke(cli, [*url, "projections", "status", "--json"])
    assert status.exit_code == 0, status.output
    assert '"name": "task_view"' in status.output
    assert f'"position": {store.head()}' in status.output
    unknown = runner.invoke(cli, [*url, "projections", "rebuild", "nope"])
    assert unknown.exit_code != 0
    engine = create_sql_engine(settings)
    try:
        assert viewed(engine) == folded(store, all_task_ids(store))
        indexes = {ix["name"] for ix in sa.inspect(engine).get_indexes("task_view")}
        assert indexes == {ix.name for ix in task_view.indexes}
    finally:
        engine.dispose()
