"""No task stays RUNNING under a live worker that does not run it.

On PostgreSQL a commit's answer can be lost (the server restarted, the connection broke after
COMMIT): the worker sees an error, or, once its save is retried, a conflict with its own
event. A proxy in front of the real server loses exactly that answer here. And whatever path
leaves a run without a thread, the pool's sweep fails it; the reaper would not, as the
worker's lease is alive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from support.pgproxy import CommitLosingProxy

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.task import ExecutionTask, TaskStatus
from tasktrail.engine.worker import WorkerPool
from tasktrail.projections.work_queue import SqlWorkQueue
from tasktrail.settings import Settings

postgres_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
def proxy(settings: Settings) -> Iterator[CommitLosingProxy]:
    with CommitLosingProxy(make_url(settings.database_url).port or 5432) as running:
        yield running


def through(proxy: CommitLosingProxy, settings: Settings) -> str:
    url = make_url(settings.database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


@postgres_only
@pytest.mark.parametrize("lost", ["task.started", "task.completed"])
def test_a_lost_commit_answer_neither_strands_nor_repeats_the_run(
    start_process: Callable[..., Any], settings: Settings, proxy: CommitLosingProxy, lost: str
) -> None:
    process = start_process(workers=1, database_url=through(proxy, settings))
    service = process.container.service
    proxy.lose_next_commit_after(lost.encode())
    task = service.start_execution(SLEEP_KIND, {"seconds": 0.2, "steps": 2})

    ended = process.wait_until_ended(task.id)

    assert proxy.commits_lost == 1, f"the {lost} commit's answer was not lost"
    topics = process.topics(task.id)
    assert ended.status is TaskStatus.COMPLETED, (ended.error, topics)
    assert topics.count("task.started") == 1
    assert topics[-1] == "task.completed"
    assert sum(t in ("task.completed", "task.failed", "task.cancelled") for t in topics) == 1


def test_a_run_recorded_on_a_live_worker_that_no_thread_runs_fails_worker_lost(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1)
    pool = process.container.parts["workers"]
    service = process.container.service
    # A real run that lasts several sweeps (one every lease/3 = 1 s here) must be spared.
    real = service.start_execution(SLEEP_KIND, {"seconds": 3.0, "steps": 6})
    # Created and Started in one save: the queue never offers it, so no thread takes it.
    stranded = ExecutionTask.submit(uuid.uuid4(), SLEEP_KIND, {"seconds": 0})
    stranded.start(pool.worker_id)
    process.container.store.save(stranded)

    failed = process.wait_until_ended(stranded.id)

    assert failed.status is TaskStatus.FAILED
    assert failed.error is not None
    assert failed.error["reason"] == "worker_lost"
    assert pool.worker_id in failed.error["message"]
    assert process.wait_until_ended(real.id).status is TaskStatus.COMPLETED
    assert process.topics(real.id).count("task.failed") == 0


def test_a_task_changed_after_its_claim_was_read_is_read_again_not_run(
    start_process: Callable[..., Any],
) -> None:
    """The dispatcher reads the tasks it claimed in one query; one cancelled after that read
    must not run on the stale copy (its Started clashes with the newer event)."""
    process = start_process(workers=0)
    service = process.container.service
    container = process.container
    pool = WorkerPool(service, container.registry, SqlWorkQueue(container.sql), container.settings)
    task = service.start_execution(SLEEP_KIND, {"seconds": 0})
    stale = service.get_tasks([task.id])[task.id]
    service.cancel_task(task.id)

    pool.run_task(task.id, stale)

    assert process.topics(task.id) == ["task.created", "task.cancelled"]
