"""Conditions, strategy definitions and CSV universes, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasktrail.errors import ValidationError
from tasktrail.screening.conditions import parse_condition, rsi, sma
from tasktrail.screening.strategy import normalize
from tasktrail.screening.universe import (
    UniverseError,
    read_csv_universe,
    resolve_csv_path,
    synthetic_stock,
)


def test_an_unknown_metric_is_rejected_naming_the_field_and_the_known_metrics() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize(
            {
                "name": "x",
                "conditions": [
                    {"metric": "pe", "operator": "<", "value": 1},
                    {"metric": "shoe_size", "operator": "<", "value": 1},
                ],
            }
        )
    assert caught.value.field == "conditions.1.metric"
    assert "shoe_size" in str(caught.value)
    assert "rsi_N" in str(caught.value)


def test_an_unknown_operator_is_rejected_naming_the_known_operators() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_condition({"metric": "pe", "operator": "~", "value": 1}, "conditions.0")
    assert caught.value.field == "conditions.0.operator"
    assert "<=" in str(caught.value)


def test_a_strategy_needs_a_name_and_conditions() -> None:
    with pytest.raises(ValidationError) as caught:
        normalize({"name": "x", "conditions": []})
    assert caught.value.field == "conditions"
    with pytest.raises(ValidationError):
        normalize({"name": " ", "conditions": [{"metric": "pe", "operator": "<", "value": 1}]})


def test_conditions_read_in_words() -> None:
    assert parse_condition({"metric": "pe", "operator": "<", "value": 15}, "c").in_words() == (
        "P/E below 15"
    )
    words = parse_condition({"metric": "close", "operator": ">", "other": "sma_50"}, "c")
    assert words.in_words() == "Close above SMA(50)"


def test_indicators_match_hand_computed_values() -> None:
    assert sma([1.0, 2.0, 3.0, 4.0], 2) == 3.5
    assert rsi([float(i) for i in range(30)], 14) == 100.0
    assert rsi([float(30 - i) for i in range(30)], 14) == 0.0


def test_the_synthetic_universe_is_deterministic_and_has_a_year_of_bars() -> None:
    first, again = synthetic_stock(7), synthetic_stock(7)
    assert first == again
    assert len(first.closes) >= 260
    assert "sample data" in first.name


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_malformed_csv_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,date,close\nAAA,2026-01-02,10\nAAA,2026-01-03,ten\n")
    with pytest.raises(UniverseError) as caught:
        read_csv_universe(path)
    assert str(caught.value) == "mine.csv line 3, column 3 (close): 'ten' is not a number"


def test_a_csv_without_a_required_column_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,close\nAAA,10\n")
    with pytest.raises(UniverseError, match="line 1: missing column 'date'"):
        read_csv_universe(path)


def test_a_csv_universe_orders_bars_by_date_and_keeps_fundamentals(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "symbol,date,close,pe\nBBB,2026-01-03,12,9\nBBB,2026-01-02,11,\nAAA,2026-01-02,5,\n",
    )
    stocks = read_csv_universe(path)
    assert [s.symbol for s in stocks] == ["AAA", "BBB"]
    assert stocks[1].closes == (11.0, 12.0)
    assert stocks[1].fundamentals["pe"] == 9.0


def test_a_csv_symbols_fundamentals_come_from_its_latest_dated_row_not_the_last_line(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "symbol,date,close,pe,sector\n"
        "AAA,2026-01-05,12,9,Energy\n"
        "AAA,2026-01-02,11,30,Utilities\n"  # older, but later in the file
        "AAA,2026-01-03,10,,\n",
    )
    (stock,) = read_csv_universe(path)
    assert stock.closes == (11.0, 10.0, 12.0)
    assert stock.fundamentals["pe"] == 9.0
    assert stock.sector == "Energy"


def test_a_csv_with_a_date_twice_for_one_symbol_names_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "symbol,date,close\nAAA,2026-01-02,10\nAAA,2026-01-02,11\n")
    with pytest.raises(UniverseError) as caught:
        read_csv_universe(path)
    assert str(caught.value) == (
        "mine.csv line 3, column 2 (date): AAA 2026-01-02 is already on line 2"
    )


def test_csv_paths_are_confined_to_the_csv_root(tmp_path: Path) -> None:
    assert resolve_csv_path("a.csv", str(tmp_path)) == (tmp_path / "a.csv").resolve()
    with pytest.raises(ValidationError):
        resolve_csv_path("../etc/passwd", str(tmp_path))
