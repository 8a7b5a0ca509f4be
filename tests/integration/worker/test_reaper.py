"""The reaper fails RUNNING tasks whose worker's lease expired, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.leases import Reaper, live_workers, workers
from tasktrail.engine.task import TaskStatus


def test_a_task_whose_worker_is_gone_fails_worker_lost_and_a_live_one_is_spared(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=0)
    service = process.container.service
    lost = service.start_execution(SLEEP_KIND, {"seconds": 0})
    service.decide(lost.id, lambda t: t.start("gone-worker"))
    process.runtime.follower.wait_for_head(timeout=10.0)
    reaper = Reaper(service, process.container.sql, process.container.settings)

    assert reaper.reap_once() == [lost.id]

    ended = service.get_task(lost.id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error["reason"] == "worker_lost"
    assert ended.error["retryable"] is True
    assert "gone-worker" in ended.error["message"]
    process.runtime.follower.wait_for_head(timeout=10.0)
    assert reaper.reap_once() == []


def test_a_second_runtime_in_the_same_process_keeps_the_first_ones_lease(
    start_process: Callable[..., Any],
) -> None:
    # Its start-up fails the orphans of this host's dead processes; the first runtime's
    # worker shares our pid but is alive, so its lease row must survive.
    first = start_process(workers=1)
    start_process(workers=1)
    assert first.container.parts["workers"].worker_id in live_workers(first.container.sql)


def test_a_lease_row_removed_behind_a_workers_back_is_registered_again(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=1)
    lease = process.container.parts["workers"].lease
    with process.container.sql.begin() as connection:
        connection.execute(workers.delete())
    assert lease.worker_id not in live_workers(process.container.sql)
    lease.renew()
    assert lease.worker_id in live_workers(process.container.sql)
