"""Waiting on a task through the write side, for tests that run workers in other processes."""

from __future__ import annotations

import time
import uuid

from tasktrail.engine.service import ExecutionService
from tasktrail.engine.task import TaskStatus

WAIT_SECONDS = 60.0


def wait_for(service: ExecutionService, task_id: uuid.UUID, done: set[TaskStatus]) -> TaskStatus:
    """The task's status once it is one of ``done``; AssertionError after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        status = service.get_task(task_id).status
        if status in done:
            return status
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still {service.get_task(task_id).status}")
