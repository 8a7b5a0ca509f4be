"""A strategy run end to end on both backends, checked against a direct evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tasktrail.engine.task import TaskStatus
from tasktrail.errors import ValidationError
from tasktrail.screening.universe import SAMPLE_SIZE, synthetic_stock

DEFINITION: dict[str, Any] = {
    "name": "cheap and rising",
    "conditions": [
        {"metric": "pe", "operator": "<", "value": 15},
        {"metric": "close", "operator": ">", "other": "sma_50"},
    ],
    "sort": {"metric": "pe", "descending": False},
    "limit": 10,
}


def expected_matches() -> list[tuple[float, str]]:
    """The same screen, computed here without the screening code's evaluation."""
    found = []
    for index in range(SAMPLE_SIZE):
        stock = synthetic_stock(index)
        pe = stock.fundamentals["pe"]
        average_50 = sum(stock.closes[-50:]) / 50
        if pe is not None and pe < 15 and stock.closes[-1] > average_50:
            found.append((pe, stock.symbol))
    return sorted(found)


def test_a_strategy_run_goes_through_both_phases_to_the_expected_result(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=2, progress_interval_seconds=0.0)
    strategies = process.container.strategies
    strategy = strategies.create(DEFINITION)
    task = strategies.execute(strategy.id, submitted_by="tester")
    assert task.status is TaskStatus.PENDING
    assert task.parameters["strategy"]["name"] == "cheap and rising"

    ended = process.wait_until_ended(task.id)

    assert ended.status is TaskStatus.COMPLETED, ended.error
    history = process.container.service.history(task.id)
    progress = [e for e in history if type(e).TOPIC == "task.progress_updated"]
    phases = [e.phase for e in progress]
    assert "fetching" in phases
    assert "filtering" in phases
    assert phases.index("filtering") > max(i for i, p in enumerate(phases) if p == "fetching")
    assert all(e.current <= e.total for e in progress)
    expected = expected_matches()
    result = ended.result
    assert result is not None
    assert result["matched"] == len(expected)
    assert result["scanned"] == SAMPLE_SIZE
    assert result["columns"] == ["symbol", "name", "pe", "close", "sma_50"]
    assert [row[0] for row in result["rows"]] == [symbol for _, symbol in expected[:10]]


def test_a_run_keeps_the_definition_it_was_submitted_with(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=0)
    strategies = process.container.strategies
    strategy = strategies.create(DEFINITION)
    task = strategies.execute(strategy.id)
    strategies.update(strategy.id, DEFINITION | {"name": "renamed"})
    assert process.container.service.get_task(task.id).parameters["strategy"]["name"] == (
        "cheap and rising"
    )
    assert strategies.get(strategy.id).name == "renamed"


def test_a_malformed_csv_universe_fails_the_run_naming_file_line_and_column(
    start_process: Callable[..., Any], tmp_path: Any
) -> None:
    (tmp_path / "bad.csv").write_text("symbol,date,close\nAAA,2026-01-02,x\n", encoding="utf-8")
    process = start_process(workers=1, csv_root=str(tmp_path))
    strategies = process.container.strategies
    strategy = strategies.create(DEFINITION | {"universe": {"provider": "csv", "path": "bad.csv"}})
    ended = process.wait_until_ended(strategies.execute(strategy.id).id)
    assert ended.status is TaskStatus.FAILED
    assert ended.error is not None
    assert ended.error["type"] == "UniverseError"
    assert ended.error["message"] == "bad.csv line 2, column 3 (close): 'x' is not a number"
    assert ended.result is None
    assert "task.completed" not in process.topics(ended.id)


BAD_DEFINITIONS = [
    (DEFINITION | {"conditions": [{"metric": "p/e", "operator": "<", "value": 1}]}, "metric"),
    (DEFINITION | {"conditions": [{"metric": "pe", "operator": "~", "value": 1}]}, "operator"),
    (DEFINITION | {"conditions": [{"metric": "pe", "operator": "<", "value": "x"}]}, "value"),
    (DEFINITION | {"conditions": [{"metric": "pe", "operator": "<", "other": "sector"}]}, "other"),
    (DEFINITION | {"conditions": []}, "conditions"),
    (DEFINITION | {"name": " "}, "name"),
    (DEFINITION | {"sort": {"metric": "rsi_999"}}, "sort.metric"),
    (DEFINITION | {"limit": 0}, "limit"),
    (DEFINITION | {"universe": {"provider": "ftp"}}, "universe.provider"),
]


def test_bad_definitions_are_rejected_naming_the_field_and_record_nothing(
    start_process: Callable[..., Any],
) -> None:
    process = start_process(workers=0)
    strategies = process.container.strategies
    kept = strategies.create(DEFINITION)
    head = process.container.store.head()
    for bad, field in BAD_DEFINITIONS:
        with pytest.raises(ValidationError) as created:
            strategies.create(bad)
        assert str(created.value.field).endswith(field), (bad, created.value.field)
        with pytest.raises(ValidationError):
            strategies.update(kept.id, bad)
    assert process.container.store.head() == head
    assert strategies.get(kept.id).version == 1


def test_examples_are_seeded_once(start_process: Callable[..., Any]) -> None:
    process = start_process(workers=0)
    first = process.container.strategies.seed_examples()
    again = process.container.strategies.seed_examples()
    assert [s.id for s in first] == [s.id for s in again]
    assert [s.version for s in again] == [1, 1, 1]
