"""Pure parts of the read side: cursors, percent, shadow table names, row shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasktrail.engine.log import LogEvent
from tasktrail.errors import ValidationError
from tasktrail.projections.queries import decode_cursor, encode_cursor
from tasktrail.projections.rebuild import shadow_tables
from tasktrail.projections.strategy_view import condition_text
from tasktrail.projections.task_view import (
    TaskViewProjection,
    created_row,
    percent,
    task_response,
    task_view,
)

moments = st.datetimes(timezones=st.just(UTC))


@given(moment=moments, task_id=st.uuids())
def test_a_cursor_decodes_to_the_key_it_was_made_from(moment: datetime, task_id: uuid.UUID) -> None:
    assert decode_cursor(encode_cursor(moment, str(task_id))) == (moment, str(task_id))


@given(garbage=st.text(max_size=40))
def test_any_other_string_is_rejected_as_a_cursor_or_decodes_to_a_key(garbage: str) -> None:
    field: str | None = None
    try:
        moment, task_id = decode_cursor(garbage)
        assert isinstance(moment, datetime)
        assert isinstance(task_id, str)
    except ValidationError as error:
        field = error.field or "missing"
    assert field in (None, "cursor")


@given(current=st.integers(0, 10**9), total=st.integers(0, 10**9))
def test_percent_is_the_floor_clamped_to_0_100(current: int, total: int) -> None:
    expected = 0 if total == 0 else min(100, 100 * current // total)
    assert percent(current, total) == expected


def test_shadow_tables_and_their_indexes_carry_the_rebuild_suffix() -> None:
    shadow = shadow_tables(TaskViewProjection())["task_view"]
    assert shadow.name == "task_view__rebuild"
    assert {i.name for i in shadow.indexes} == {f"{i.name}__rebuild" for i in task_view.indexes}
    assert {i.name for i in task_view.indexes} == {
        "ix_task_view_submitted",
        "ix_task_view_status_submitted",
        "ix_task_view_kind_submitted",
        "ix_task_view_strategy_submitted",
    }


def test_a_new_task_row_has_the_task_response_shape_of_the_api() -> None:
    task_id = uuid.uuid4()
    event = LogEvent(
        7,
        task_id,
        1,
        "task.created",
        datetime(2026, 1, 2, tzinfo=UTC),
        {"kind": "k", "parameters": {"strategy_id": "s1", "strategy": {"name": "Cheap"}}},
        None,
    )
    response = task_response(created_row(event))
    assert response["id"] == str(task_id)
    assert response["strategy_name"] == "Cheap"
    assert response["status"] == "PENDING"
    assert response["submitted_at"] == "2026-01-02T00:00:00+00:00"
    assert response["error"] is None
    assert response["result_summary"] is None
    assert response["position"] == 7


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        ({"metric": "pe", "operator": "<", "value": 15}, "pe < 15"),
        ({"metric": "close", "operator": ">", "other": "sma_50"}, "close > sma_50"),
    ],
)
def test_conditions_read_as_text(condition: dict[str, object], text: str) -> None:
    assert condition_text(condition) == text
