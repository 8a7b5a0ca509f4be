"""Two OS processes racing on the same tasks: the event store's concurrency check arbitrates."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections import Counter

from tasktrail.engine.service import ExecutionService
from tasktrail.engine.store import TaskStore
from tasktrail.engine.task import TaskStatus
from tasktrail.settings import Settings

TASKS = 150

RACER = textwrap.dedent(
    """
    import sys, uuid
    from tasktrail.engine.service import ExecutionService
    from tasktrail.engine.store import TaskStore
    from tasktrail.engine.task import InvalidTaskStateError
    from tasktrail.settings import Settings

    url, action, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    store = TaskStore(Settings(database_url=url))
    service = ExecutionService(store, lambda: ["test.kind"])
    print("ready", flush=True)
    sys.stdin.readline()  # "go": both racers begin together, whatever their start-up took
    won = 0
    for raw in ids:
        task_id = uuid.UUID(raw)
        try:
            if action == "start":
                service.decide(task_id, lambda t: t.start("starter"))
            elif action == "request_cancel":
                service.decide(task_id, lambda t: t.request_cancel("canceller"))
            elif action == "complete":
                service.decide(task_id, lambda t: t.complete({"by": "completer"}))
            else:
                service.decide(task_id, lambda t: t.cancel("canceller", "race"))
            won += 1
        except InvalidTaskStateError:
            pass
    print(won)
    """
)


def start_racers(url: str, orders: dict[str, list[str]]) -> list[subprocess.Popen[str]]:
    """One racer process per action, each released once every one is set up (an interpreter
    starts in a variable time: without the gate one racer could finish before the other
    began, and there would be no race)."""
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, action, ",".join(order)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for action, order in orders.items()
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    return racers


def test_a_completion_racing_a_cancel_in_another_process_leaves_one_terminal_event(
    settings: Settings,
) -> None:
    store = TaskStore(settings)
    service = ExecutionService(store, lambda: ["test.kind"])
    ids = []
    for _ in range(TASKS):
        task = service.start_execution("test.kind", {})
        service.decide(task.id, lambda t: t.start("w1"))
        ids.append(str(task.id))
    orders = {"complete": ids, "cancel": ids[::-1]}  # from opposite ends, as below
    racers = start_racers(settings.database_url, orders)
    wins = [int(r.communicate(timeout=120)[0].strip()) for r in racers]
    print(f"complete won {wins[0]}, cancel won {wins[1]} of {TASKS}")
    assert sum(wins) == TASKS
    assert all(wins), "one side never won: the race was not run"

    terminal_topics = {"task.completed", "task.cancelled", "task.failed"}
    terminal_per_task: Counter[str] = Counter()
    for notification in store.recorder.select_notifications(start=1, limit=10 * TASKS):
        if notification.topic in terminal_topics:
            terminal_per_task[str(notification.originator_id)] += 1
    assert terminal_per_task == Counter(dict.fromkeys(ids, 1))
    statuses = {service.get_task(uuid.UUID(i)).status for i in ids}
    assert statuses <= {TaskStatus.COMPLETED, TaskStatus.CANCELLED}
    store.close()


def test_a_start_racing_a_cancel_of_pending_tasks_in_another_process_never_does_both(
    settings: Settings,
) -> None:
    store = TaskStore(settings)
    service = ExecutionService(store, lambda: ["test.kind"])
    ids = [str(service.start_execution("test.kind", {}).id) for _ in range(2 * TASKS)]
    # The two go through the tasks from opposite ends and cross in the middle: each side
    # wins some tasks outright and both touch the ones around the crossing at the same time.
    orders = {"start": ids, "request_cancel": ids[::-1]}
    racers = start_racers(settings.database_url, orders)
    for racer in racers:
        racer.communicate(timeout=180)
        assert racer.returncode == 0

    topics: dict[str, list[str]] = {i: [] for i in ids}
    for notification in store.recorder.select_notifications(start=1, limit=10 * len(ids)):
        topics[str(notification.originator_id)].append(notification.topic)
    outcomes = Counter(tuple(t) for t in topics.values())
    allowed = {
        ("task.created", "task.cancelled"),
        ("task.created", "task.started", "task.cancel_requested"),
    }
    assert set(outcomes) <= allowed, outcomes
    assert set(outcomes) == allowed, f"one side never won: the race was not run ({outcomes})"
    assert sum(outcomes.values()) == len(ids)
    print(
        f"start won {outcomes[max(allowed, key=len)]}, cancel won "
        f"{outcomes[min(allowed, key=len)]} of {len(ids)}"
    )
    store.close()
