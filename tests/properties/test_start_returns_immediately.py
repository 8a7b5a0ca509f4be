"""Plan property 4: starting an execution returns before any worker touched the task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasktrail import bootstrap
from tasktrail.engine.handlers import SLEEP_KIND
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

handler_parameters = st.fixed_dictionaries(
    {"seconds": st.sampled_from([0, 0.2, 1]), "steps": st.integers(0, 3)},
    optional={"fail": st.text(min_size=1, max_size=5)},
)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[bootstrap.Container]:
    configured = Settings(database_url=f"sqlite:///{tmp_path / 'p4.db'}", seed_examples=False)
    container = bootstrap.build(configured)
    runtime = bootstrap.build_runtime(container, workers=4)
    runtime.start()
    yield container
    runtime.stop()
    container.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parameters=handler_parameters)
def test_starting_an_execution_returns_a_pending_task_no_worker_touched(
    running: bootstrap.Container, parameters: dict[str, Any]
) -> None:
    task = running.service.start_execution(SLEEP_KIND, parameters)
    assert task.status is TaskStatus.PENDING
    assert task.version == 1
    assert task.worker_id is None
