"""The task view's counts by status: equal to a GROUP BY over the view and to the fold of the
log, whatever the batching, after rebuilds, after retention and after the migration."""

from __future__ import annotations

from collections import Counter

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from projection_histories import (
    COMMANDS,
    STATUSES,
    all_task_ids,
    folded,
    grouped_counts,
    projections,
    write_history,
    write_random_tasks,
)

from tasktrail import schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import TaskStore
from tasktrail.projections.projector import Projector
from tasktrail.projections.queries import counts_by_status, list_tasks
from tasktrail.projections.rebuild import Rebuild
from tasktrail.projections.retention import remove_rows
from tasktrail.projections.status_counts import task_status_counts
from tasktrail.projections.task_view import TaskViewProjection, task_view
from tasktrail.settings import Settings

# Each history is saved one event at a time; the expected status is the write side's rule.
HISTORIES: list[tuple[list[str], str]] = [
    ([], "PENDING"),
    (["progress"], "PENDING"),  # progress before start records nothing
    (["start"], "RUNNING"),
    (["start", "progress", "progress"], "RUNNING"),
    (["start", "request_cancel"], "RUNNING"),
    (["start", "progress", "complete"], "COMPLETED"),
    (["start", "complete", "cancel", "fail"], "COMPLETED"),  # terminal states absorb
    (["start", "progress", "fail"], "FAILED"),
    (["cancel"], "CANCELLED"),  # from PENDING
    (["request_cancel"], "CANCELLED"),  # a cancel request on a PENDING task cancels it
    (["start", "request_cancel", "progress", "cancel"], "CANCELLED"),  # from RUNNING
    (["start", "cancel"], "CANCELLED"),
]


def folded_counts(store: TaskStore) -> dict[str, int]:
    """The write side's count: each task's status from its events."""
    counted = Counter(state["status"] for state in folded(store, all_task_ids(store)).values())
    return {status: counted.get(status, 0) for status in STATUSES}


def assert_counts_are_the_views(sql: sa.Engine, store: TaskStore) -> None:
    expected = folded_counts(store)
    assert grouped_counts(sql) == expected
    assert counts_by_status(sql) == expected
    assert list_tasks(sql).counts == expected


def write_every_history(store: TaskStore) -> Counter[str]:
    for n, (commands, _) in enumerate(HISTORIES):
        write_history(store, commands, seed=n)
    return Counter(status for _, status in HISTORIES)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 1000])
def test_counts_follow_every_transition_whether_a_life_spans_batches_or_fits_in_one(
    store: TaskStore, sql: sa.Engine, batch_size: int
) -> None:
    expected = write_every_history(store)
    Projector(sql, projections()).catch_up(store, batch_size=batch_size)
    assert counts_by_status(sql) == {s: expected[s] for s in STATUSES}
    assert_counts_are_the_views(sql, store)


def test_counts_stay_right_as_later_batches_move_tasks_already_in_the_view(
    store: TaskStore, sql: sa.Engine
) -> None:
    projector = Projector(sql, projections())
    write_random_tasks(store, 30, seed=3)
    projector.catch_up(store, batch_size=7)
    assert_counts_are_the_views(sql, store)
    running = [write_history(store, ["start", "progress"], seed=n) for n in range(4)]
    projector.catch_up(store, batch_size=4)
    assert_counts_are_the_views(sql, store)
    # End the tasks counted as RUNNING, with new PENDING tasks in between, in mixed batches.
    for n, task in enumerate(running):
        write_history(store, [], seed=n)
        if n % 2:
            task.cancel("tester")
        else:
            task.complete({"matched": 0, "scanned": 1})
        store.save(task)
    write_random_tasks(store, 10, seed=4)
    projector.catch_up(store, batch_size=5)
    assert_counts_are_the_views(sql, store)


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    histories=st.lists(st.lists(st.sampled_from(COMMANDS), max_size=8), min_size=1, max_size=4),
    batch_size=st.integers(min_value=1, max_value=12),
)
def test_for_random_histories_and_batch_sizes_the_counts_equal_a_group_by_over_the_view(
    store: TaskStore, sql: sa.Engine, histories: list[list[str]], batch_size: int
) -> None:
    # One database for all examples: the view, the counts and the log all grow together.
    for n, commands in enumerate(histories):
        write_history(store, commands, seed=n)
    Projector(sql, projections()).catch_up(store, batch_size=batch_size)
    assert_counts_are_the_views(sql, store)


def spoil_counts(sql: sa.Engine) -> None:
    with sql.begin() as connection:
        connection.execute(task_status_counts.update().values(n=task_status_counts.c.n + 7))
    assert counts_by_status(sql) != grouped_counts(sql)


@pytest.mark.parametrize("in_place", [False, True], ids=["blue_green", "in_place"])
def test_a_rebuild_rebuilds_the_counts_too(
    store: TaskStore, sql: sa.Engine, in_place: bool
) -> None:
    write_every_history(store)
    write_random_tasks(store, 25, seed=8)
    Projector(sql, projections()).catch_up(store)
    spoil_counts(sql)  # so counts left over from before the rebuild would show
    job = Rebuild(sql, store, TaskViewProjection(), batch_size=6)
    report = job.in_place() if in_place else job.blue_green()
    assert report.position == store.head()
    assert_counts_are_the_views(sql, store)
    # And the projector keeps them right on the rebuilt tables.
    write_random_tasks(store, 5, seed=9)
    Projector(sql, projections()).catch_up(store)
    assert_counts_are_the_views(sql, store)


def test_removing_ended_tasks_lowers_their_counts(store: TaskStore, sql: sa.Engine) -> None:
    write_every_history(store)
    Projector(sql, projections()).catch_up(store)
    ended = [i for i in list_tasks(sql, limit=500).items if i["status"] in ("FAILED", "CANCELLED")]
    remove_rows(sql, [str(i["id"]) for i in ended[:-1]])
    counts = counts_by_status(sql)
    assert counts == grouped_counts(sql)
    assert counts["FAILED"] + counts["CANCELLED"] == 1
    assert sum(counts.values()) == len(HISTORIES) - len(ended) + 1


def migrate(settings: Settings, revision: str, *, down: bool = False) -> None:
    engine = create_sql_engine(settings, pool_size=1)
    try:
        with engine.connect() as connection:
            config = schema.alembic_config()
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def test_the_migration_counts_the_tasks_a_database_already_has(
    store: TaskStore, sql: sa.Engine, settings: Settings
) -> None:
    write_every_history(store)
    write_random_tasks(store, 40, seed=12)
    Projector(sql, projections()).catch_up(store)
    migrate(settings, "0003", down=True)  # the schema before the counts, with its tasks
    assert "task_status_counts" not in sa.inspect(sql).get_table_names()
    assert sum(grouped_counts(sql).values()) == len(HISTORIES) + 40
    schema.upgrade(settings)
    assert_counts_are_the_views(sql, store)
    write_random_tasks(store, 6, seed=13)  # and the projector goes on from the filled counts
    Projector(sql, projections()).catch_up(store)
    assert_counts_are_the_views(sql, store)


def test_unknown_task_ids_move_no_count(store: TaskStore, sql: sa.Engine) -> None:
    write_every_history(store)
    task = write_history(store, ["start"], seed=99)
    Projector(sql, projections()).catch_up(store)
    with sql.begin() as connection:  # the row is gone (as if removed), its events come on
        connection.execute(task_view.delete().where(task_view.c.id == str(task.id)))
        connection.execute(
            task_status_counts.update()
            .where(task_status_counts.c.status == "RUNNING")
            .values(n=task_status_counts.c.n - 1)
        )
    task.complete({"matched": 0, "scanned": 1})
    store.save(task)
    Projector(sql, projections()).catch_up(store)
    assert counts_by_status(sql) == grouped_counts(sql)
    assert counts_by_status(sql)["COMPLETED"] == Counter(s for _, s in HISTORIES)["COMPLETED"]
