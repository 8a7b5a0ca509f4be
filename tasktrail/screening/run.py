"""The ``screening.run_strategy`` handler: fetch the universe, filter it, rank the matches.

Phase ``fetching`` reports symbols loaded / total, batch by batch; phase ``filtering`` reports
symbols evaluated / total. The result is ``{"columns", "rows", "matched", "scanned"}``: the
matching symbols with the values of every metric the strategy uses, sorted by its sort metric
(missing values last, then by symbol) and cut to its limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasktrail.engine.handlers import Handler, HandlerRegistry, TaskContext
from tasktrail.errors import ValidationError
from tasktrail.screening.conditions import (
    Condition,
    Metric,
    indicator,
    parse_conditions,
    parse_metric,
)
from tasktrail.screening.strategy import normalize
from tasktrail.screening.universe import (
    CsvUniverse,
    SampleUniverse,
    Stock,
    Universe,
    resolve_csv_path,
)
from tasktrail.settings import Settings

KIND = "screening.run_strategy"
FILTER_BATCH = 250
FETCHING = "fetching"
FILTERING = "filtering"


def universe_for(universe: dict[str, Any], settings: Settings) -> Universe:
    if universe.get("provider") == "csv":
        return CsvUniverse(resolve_csv_path(universe.get("path"), settings.csv_root))
    return SampleUniverse(batch_delay=settings.universe_batch_delay_seconds)


def metric_value(stock: Stock, metric: Metric) -> float | str | None:
    if metric.kind == "text":
        return stock.sector
    if metric.kind == "fundamental":
        return stock.fundamentals.get(metric.name)
    return indicator(metric, stock.closes, stock.volumes)


class Evaluation:
    """One stock's metrics, computed once each and only when a condition asks."""

    def __init__(self, stock: Stock) -> None:
        self.stock = stock
        self.values: dict[str, float | str | None] = {}

    def get(self, metric: Metric) -> float | str | None:
        if metric.name not in self.values:
            self.values[metric.name] = metric_value(self.stock, metric)
        return self.values[metric.name]

    def matches(self, conditions: Sequence[Condition]) -> bool:
        for condition in conditions:
            for metric in condition.metrics:
                self.get(metric)
            if not condition.holds(self.values):
                return False
        return True


def columns_for(conditions: Sequence[Condition], sort: Metric | None) -> list[Metric]:
    seen: dict[str, Metric] = {}
    for metric in [m for c in conditions for m in c.metrics] + ([sort] if sort else []):
        seen.setdefault(metric.name, metric)
    return list(seen.values())


def _shown(value: float | str | None) -> float | str | None:
    return round(value, 4) if isinstance(value, float) else value


def rank(matches: list[Evaluation], sort: Metric | None, descending: bool) -> list[Evaluation]:
    by_symbol = sorted(matches, key=lambda e: e.stock.symbol)
    if sort is None:
        return by_symbol
    present = [e for e in by_symbol if isinstance(e.get(sort), int | float)]
    missing = [e for e in by_symbol if not isinstance(e.get(sort), int | float)]
    present.sort(key=lambda e: float(e.get(sort) or 0.0), reverse=descending)
    return present + missing


def screen(definition: dict[str, Any], universe: Universe, context: TaskContext) -> dict[str, Any]:
    """Run a normalised definition over ``universe``, reporting both phases."""
    conditions = parse_conditions(definition["conditions"])
    sort_spec = definition.get("sort")
    sort = parse_metric(sort_spec["metric"], "sort.metric") if sort_spec else None
    stocks = fetch(universe, context)
    matches = filter_stocks(stocks, conditions, context)
    ranked = rank(matches, sort, bool(sort_spec and sort_spec.get("descending", True)))
    shown = columns_for(conditions, sort)
    rows: list[list[float | str | None]] = [
        [e.stock.symbol, e.stock.name, *(_shown(e.get(m)) for m in shown)]
        for e in ranked[: int(definition["limit"])]
    ]
    return {
        "columns": ["symbol", "name"] + [m.name for m in shown],
        "rows": rows,
        "matched": len(matches),
        "scanned": len(stocks),
    }


def fetch(universe: Universe, context: TaskContext) -> list[Stock]:
    total = universe.total()
    context.progress(0, total, FETCHING, f"loading {total} symbols")
    stocks: list[Stock] = []
    for batch in universe.batches():
        stocks.extend(batch)
        context.progress(len(stocks), total, FETCHING, f"loaded {len(stocks)} of {total}")
    return stocks


def filter_stocks(
    stocks: Sequence[Stock], conditions: Sequence[Condition], context: TaskContext
) -> list[Evaluation]:
    total = len(stocks)
    context.progress(0, total, FILTERING, f"evaluating {total} symbols")
    matches: list[Evaluation] = []
    for start in range(0, total, FILTER_BATCH):
        for stock in stocks[start : start + FILTER_BATCH]:
            evaluation = Evaluation(stock)
            if evaluation.matches(conditions):
                matches.append(evaluation)
        done = min(total, start + FILTER_BATCH)
        context.progress(done, total, FILTERING, f"{len(matches)} matches in {done} of {total}")
    return matches


def validate_parameters(params: dict[str, Any]) -> None:
    """A run needs the strategy's full definition in its parameters."""
    if not isinstance(params.get("strategy"), dict):
        raise ValidationError("a strategy run needs the strategy's definition", field="strategy")
    normalize(params["strategy"])


def make_handler(settings: Settings) -> Handler:
    """The handler for ``screening.run_strategy``, reading universes as ``settings`` say."""

    def run_strategy(params: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        definition = normalize(params["strategy"])
        return screen(definition, universe_for(definition["universe"], settings), context)

    return run_strategy


def register(registry: HandlerRegistry, settings: Settings) -> None:
    """Make strategy runs a task kind of ``registry``."""
    registry.register(KIND, make_handler(settings), validate=validate_parameters)
