"""Replay reproduces, at every version of every run, the state the task view showed then and
the fold of the events up to that version (random interleaved histories, both backends)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from projection_histories import (
    COMMANDS,
    KIND,
    parameters_for,
    projections,
    run_command,
    service_for,
    viewed,
)

from tasktrail.engine.history import history_with_states, task_state
from tasktrail.engine.log import read_log
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import ExecutionTask
from tasktrail.projections.projector import Projector

TASKS = 4
# (which task, which command) pairs: the runs' events interleave in the log.
histories = st.lists(st.tuples(st.integers(0, TASKS - 1), st.sampled_from(COMMANDS)), max_size=24)


def write_interleaved(store: TaskStore, history: list[tuple[int, str]]) -> list[uuid.UUID]:
    tasks = [ExecutionTask.submit(uuid.uuid4(), KIND, parameters_for(n)) for n in range(TASKS)]
    store.save(*tasks)
    for n, (which, command) in enumerate(history):
        run_command(tasks[which], command, n)
        store.save(tasks[which])
    return [t.id for t in tasks]


def project_one_by_one(
    store: TaskStore, sql: sa.Engine, projector: Projector
) -> dict[tuple[uuid.UUID, int], dict[str, Any]]:
    """Apply the log one event at a time; the task's view row right after each event."""
    shown = {}
    for event in read_log(store, after=projector.position(), limit=100_000):
        projector.handle([event])
        row = viewed(sql, [event.originator_id])[str(event.originator_id)]
        shown[(event.originator_id, event.version)] = row
    return shown


@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_replay_of_every_run_shows_at_each_version_what_the_view_showed_and_the_fold(
    store: TaskStore, sql: sa.Engine, history: list[tuple[int, str]]
) -> None:
    service = service_for(store)
    projector = Projector(sql, projections(), standby=False)
    ids = write_interleaved(store, history)
    shown = project_one_by_one(store, sql, projector)
    for task_id in ids:
        steps = history_with_states(service, task_id)
        assert [s.version for s in steps] == list(range(1, service.get_task(task_id).version + 1))
        assert [s.position for s in steps] == [p for _, p in store.positions_of(task_id)]
        for step in steps:
            assert step.state == shown[(task_id, step.version)], (task_id, step.version)
            assert step.state == task_state(service.state_at(task_id, step.version))
