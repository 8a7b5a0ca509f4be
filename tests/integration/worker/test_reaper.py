"""The reaper fails RUNNING tasks whose worker's lease expired, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.leases import Reaper
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
