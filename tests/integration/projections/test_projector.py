"""The projector: the task view is a pure function of the log, applied exactly once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from projection_histories import (
    COMMANDS,
    folded,
    projections,
    viewed,
    write_history,
    write_random_tasks,
)

from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.outbox import Follower
from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.projections import positions
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings

# One database per test; examples add tasks to it and compare only their own.
histories = st.lists(st.lists(st.sampled_from(COMMANDS), max_size=8), min_size=1, max_size=4)


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(histories=histories)
def test_for_random_histories_the_task_view_equals_the_fold_of_the_events(
    store: TaskStore, sql: sa.Engine, histories: list[list[str]]
) -> None:
    ids = [write_history(store, commands, seed=n).id for n, commands in enumerate(histories)]
    Projector(sql, projections()).catch_up(store, batch_size=3)
    assert viewed(sql, ids) == folded(store, ids)


def test_the_follower_keeps_the_view_current_and_its_position_at_the_head(
    store: TaskStore, sql: sa.Engine, settings: Settings
) -> None:
    projector = Projector(sql, projections())
    follower = Follower(store, settings, batch_size=50)
    follower.add_consumer(projector)
    follower.start()
    try:
        ids = write_random_tasks(store, 30, seed=7)
        assert follower.wait_for_head(timeout=30)
    finally:
        follower.stop()
    assert viewed(sql) == folded(store, ids)
    with sql.connect() as connection:
        stored = positions.read(connection)
    assert stored["task_view"] == stored["strategy_view"] == store.head()


class Counting:
    """A projection that counts every application, so a doubled event shows."""

    name = "counting"
    table = sa.Table(
        "counting_test", sa.MetaData(), sa.Column("position", sa.BigInteger, nullable=False)
    )
    tables: Sequence[sa.Table] = (table,)

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        connection.execute(tables["counting_test"].insert().values(position=event.position))


def applied_positions(sql: sa.Engine) -> list[int]:
    with sql.connect() as connection:
        query = sa.select(Counting.table.c.position).order_by(Counting.table.c.position)
        return [int(p) for p in connection.execute(query).scalars()]


def test_a_batch_handed_over_twice_is_applied_once(store: TaskStore, sql: sa.Engine) -> None:
    Counting.table.create(sql)
    write_random_tasks(store, 5, seed=1)
    batch = read_log(store, after=0, limit=1000)
    # Without the standby lock, so that the position rows alone must keep it exactly-once.
    projector = Projector(sql, [Counting()], standby=False)
    assert projector.position() == 0
    projector.handle(batch)
    second = Projector(sql, [Counting()], standby=False)  # another process, same batch
    second._position = 0
    assert second.handle(batch) == batch[-1].position
    assert applied_positions(sql) == [e.position for e in batch]


def test_a_projection_reset_below_the_batch_makes_the_projector_read_again(
    store: TaskStore, sql: sa.Engine
) -> None:
    Counting.table.create(sql)
    write_random_tasks(store, 5, seed=2)
    projector = Projector(sql, [Counting()])
    projector.catch_up(store)
    head = store.head()
    with sql.begin() as connection:
        connection.execute(Counting.table.delete())
        positions.store(connection, "counting", 0)
    write_history(store, ["start"], seed=3)
    # The follower would hand over only the new events; the projector must ask for more.
    assert projector.handle(read_log(store, after=head)) == 0
    projector.catch_up(store)
    assert applied_positions(sql) == [e.position for e in read_log(store, 0, 10_000)]


def test_an_unknown_task_id_in_an_update_changes_nothing(store: TaskStore, sql: sa.Engine) -> None:
    # Events of other aggregates (strategies) and stray updates must not break the batch.
    projector = Projector(sql, projections())
    event = LogEvent(1, uuid.uuid4(), 2, "task.started", datetime.now(UTC), {}, None)
    assert projector.handle([event]) == 1
    assert viewed(sql) == {}


def test_free_form_parameters_cannot_stop_the_projector(store: TaskStore, sql: sa.Engine) -> None:
    # Any kind may carry any parameters; the view copies strategy_id from them into a
    # bounded column, and PostgreSQL text refuses NUL.
    service = ExecutionService(store, lambda: ["test.kind"])
    long_id = service.start_execution("test.kind", {"strategy_id": "x" * 500})
    nul = service.start_execution("test.kind", {"strategy_id": "a\x00b"})
    after = service.start_execution("test.kind", {})
    Projector(sql, projections()).catch_up(store)
    rows = viewed(sql, [long_id.id, nul.id, after.id])
    assert rows[str(long_id.id)]["strategy_id"] is None
    assert rows[str(nul.id)]["strategy_id"] == "ab"
    assert rows[str(after.id)]["status"] == "PENDING"
