"""Queries: keyset pages without gaps or duplicates, filters, counts, strategies, positions."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from projection_histories import projections, write_random_tasks

from tasktrail.engine.log import LogEvent
from tasktrail.engine.store import TaskStore
from tasktrail.errors import NotFoundError, ValidationError
from tasktrail.projections.projector import Projector
from tasktrail.projections.queries import (
    counts_by_status,
    get_strategy,
    get_task,
    list_strategies,
    list_tasks,
    projection_status,
)


@pytest.fixture
def projected(store: TaskStore, sql: sa.Engine) -> list[uuid.UUID]:
    ids = write_random_tasks(store, 37, seed=21)
    Projector(sql, projections()).catch_up(store)
    return ids


def all_pages(sql: sa.Engine, **filters: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    for _ in range(100):
        page = list_tasks(sql, limit=4, cursor=cursor, **filters)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


def test_paging_through_tasks_returns_each_once_newest_first(
    sql: sa.Engine, projected: list[uuid.UUID], store: TaskStore
) -> None:
    items = all_pages(sql)
    assert sorted(str(i["id"]) for i in items) == sorted(str(i) for i in projected)
    keys = [(i["submitted_at"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)
    assert list_tasks(sql).position == store.head()


@pytest.mark.parametrize("field", ["status", "strategy_id", "kind"])
def test_filtered_pages_hold_exactly_the_matching_tasks(
    sql: sa.Engine, projected: list[uuid.UUID], field: str
) -> None:
    everything = list_tasks(sql, limit=500).items
    value = str(everything[0][field])
    expected = [i for i in everything if i[field] == value]
    assert all_pages(sql, **{field: value}) == expected


def test_counts_by_status_count_every_task(sql: sa.Engine, projected: list[uuid.UUID]) -> None:
    counts = counts_by_status(sql)
    everything = list_tasks(sql, limit=500).items
    assert counts == {s: Counter(i["status"] for i in everything)[s] for s in counts}
    assert sum(counts.values()) == len(projected)


def test_a_garbled_cursor_is_a_validation_error_on_the_cursor_field(sql: sa.Engine) -> None:
    for garbled in ["nonsense!", "bm90IGpzb24", "WzEsMl0"]:
        with pytest.raises(ValidationError) as raised:
            list_tasks(sql, cursor=garbled)
        assert raised.value.field == "cursor"


def test_get_task_answers_the_task_or_not_found(
    sql: sa.Engine, projected: list[uuid.UUID], store: TaskStore
) -> None:
    found = get_task(sql, str(projected[0]))
    assert found["id"] == str(projected[0])
    assert found["position"] == store.head()
    with pytest.raises(NotFoundError):
        get_task(sql, str(uuid.uuid4()))


def test_strategies_are_listed_with_their_latest_definition(sql: sa.Engine) -> None:
    strategy_id = uuid.uuid4()
    moment = datetime.now(UTC)
    definition = {
        "name": "cheap",
        "description": "low pe",
        "universe": {"provider": "sample"},
        "conditions": [{"metric": "pe", "operator": "<", "value": 15}],
        "sort": {"metric": "pe", "descending": False},
        "limit": 10,
    }
    changed = definition | {"name": "cheaper", "conditions": [], "limit": 5}
    Projector(sql, projections()).handle(
        [
            LogEvent(1, strategy_id, 1, "strategy.created", moment, definition, None),
            LogEvent(2, strategy_id, 2, "strategy.updated", moment + timedelta(1), changed, None),
        ]
    )
    listed = list_strategies(sql)
    assert listed.position == 2
    assert listed.items == [get_strategy(sql, str(strategy_id))]
    strategy = listed.items[0]
    assert strategy["name"] == "cheaper"
    assert strategy["limit"] == 5
    assert strategy["version"] == 2
    assert strategy["created_at"] == moment.isoformat()
    with pytest.raises(NotFoundError):
        get_strategy(sql, str(uuid.uuid4()))


def test_projection_status_shows_the_lag_behind_the_head(
    sql: sa.Engine, projected: list[uuid.UUID], store: TaskStore
) -> None:
    write_random_tasks(store, 2, seed=1)
    states = {s.name: s for s in projection_status(sql, store, ["task_view", "strategy_view"])}
    assert states["task_view"].head == store.head()
    assert states["task_view"].lag == store.head() - states["task_view"].position > 0
