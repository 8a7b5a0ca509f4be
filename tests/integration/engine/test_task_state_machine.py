"""A Hypothesis state machine drives many tasks through the real store on each backend.

The model is a dict of expected statuses; after every step the stored aggregate (reloaded
from the database) must agree, and every command the model calls illegal must raise.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import InvalidTaskStateError, TaskStatus
from tasktrail.settings import Settings

ACTIONS = ["start", "progress", "cancel", "complete", "fail"]


def machine_for(settings: Settings) -> type[RuleBasedStateMachine]:
    class TaskLifecycle(RuleBasedStateMachine):
        tasks = Bundle("tasks")

        @initialize()
        def open_store(self) -> None:
            self.store = TaskStore(settings)
            self.service = ExecutionService(self.store, lambda: ["test.kind"])
            self.expected: dict[uuid.UUID, TaskStatus] = {}
            self.requested: set[uuid.UUID] = set()

        def teardown(self) -> None:
            self.store.close()

        @rule(target=tasks)
        def submit(self) -> uuid.UUID:
            task = self.service.start_execution("test.kind", {})
            self.expected[task.id] = TaskStatus.PENDING
            return task.id

        @rule(task_id=tasks, action=st.sampled_from(ACTIONS))
        def act(self, task_id: uuid.UUID, action: str) -> None:
            status = self.expected[task_id]
            legal, after = self.model(task_id, status, action)
            try:
                self.service.decide(task_id, lambda t: self.command(t, action))
            except InvalidTaskStateError:
                assert not legal, f"{action} on {status} raised"
                return
            assert legal, f"{action} on {status} did not raise"
            self.expected[task_id] = after

        def model(
            self, task_id: uuid.UUID, status: TaskStatus, action: str
        ) -> tuple[bool, TaskStatus]:
            if action == "start":
                return status is TaskStatus.PENDING, TaskStatus.RUNNING
            if action == "progress":
                return status is TaskStatus.RUNNING, status
            if action == "cancel":
                if status is TaskStatus.PENDING:
                    return True, TaskStatus.CANCELLED
                if status is TaskStatus.RUNNING:
                    self.requested.add(task_id)
                return status is TaskStatus.RUNNING, status
            final = TaskStatus.COMPLETED if action == "complete" else TaskStatus.FAILED
            return status is TaskStatus.RUNNING, final

        @staticmethod
        def command(task: object, action: str) -> None:
            from tasktrail.engine.task import ExecutionTask

            assert isinstance(task, ExecutionTask)
            if action == "start":
                task.start("w1")
            elif action == "progress":
                task.update_progress(1, 4, "fetching")
            elif action == "cancel":
                task.request_cancel("u")
            elif action == "complete":
                task.complete({"matched": 0})
            else:
                task.fail("RuntimeError", "boom")

        @invariant()
        def the_store_agrees_with_the_model(self) -> None:
            for task_id, status in self.expected.items():
                stored = self.service.get_task(task_id)
                assert stored.status is status
                if status is TaskStatus.RUNNING:
                    assert stored.cancel_requested == (task_id in self.requested)

    return TaskLifecycle


def test_every_sequence_of_commands_leaves_the_stored_tasks_as_the_model_predicts(
    settings: Settings,
) -> None:
    run_state_machine_as_test(
        machine_for(settings),
        settings=hypothesis_settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
