"""Conditions over a stock's metrics: fundamentals, and indicators computed from daily closes.

A condition compares a metric with a number (``{"metric", "operator", "value"}``) or with
another metric (``{"metric", "operator", "other"}``). Metric names: the fundamentals below,
and indicators with their window in the name: ``sma_50``, ``ema_20``, ``rsi_14``,
``return_63d``, ``volatility_20d``, ``avg_volume_20d``, and ``close``. Percentages (ROE,
dividend yield, revenue growth, returns, volatility) are in percent: ``roe > 15`` is 15 %.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasktrail.errors import ValidationError

MAX_WINDOW = 252  # a trading year; the sample universe has 260 bars

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATOR_WORDS = {
    "<": "below",
    "<=": "at most",
    ">": "above",
    ">=": "at least",
    "==": "equal to",
    "!=": "not equal to",
}
TEXT_OPERATORS = ("==", "!=")

FUNDAMENTALS: dict[str, str] = {
    "market_cap": "Market cap (USD)",
    "pe": "P/E",
    "pb": "P/B",
    "roe": "ROE (%)",
    "dividend_yield": "Dividend yield (%)",
    "revenue_growth": "Revenue growth (%)",
    "debt_to_equity": "Debt/equity",
}
TEXT_METRICS: dict[str, str] = {"sector": "Sector"}
INDICATOR_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "sma": (re.compile(r"^sma_(\d+)$"), "SMA({n})"),
    "ema": (re.compile(r"^ema_(\d+)$"), "EMA({n})"),
    "rsi": (re.compile(r"^rsi_(\d+)$"), "RSI({n})"),
    "return": (re.compile(r"^return_(\d+)d$"), "{n}-day return (%)"),
    "volatility": (re.compile(r"^volatility_(\d+)d$"), "{n}-day volatility (% a year)"),
    "avg_volume": (re.compile(r"^avg_volume_(\d+)d$"), "{n}-day average volume"),
}
INDICATOR_EXAMPLES = (
    "close",
    "sma_20",
    "sma_50",
    "sma_200",
    "ema_20",
    "rsi_14",
    "return_21d",
    "return_63d",
    "return_252d",
    "volatility_20d",
    "avg_volume_20d",
)
KNOWN_HINT = (
    "sector, market_cap, pe, pb, roe, dividend_yield, revenue_growth, debt_to_equity, close, "
    "sma_N, ema_N, rsi_N, return_Nd, volatility_Nd, avg_volume_Nd (N from 1 to 252)"
)


@dataclass(frozen=True)
class Metric:
    """A metric name understood: its kind and, for indicators, its family and window."""

    name: str
    kind: str  # "fundamental" | "indicator" | "text"
    label: str
    family: str = ""
    window: int = 0


def parse_metric(name: object, field: str) -> Metric:
    """The metric called ``name``; ValidationError naming the known ones otherwise."""
    if isinstance(name, str):
        found = _known_metric(name)
        if found is not None:
            return found
    raise ValidationError(f"unknown metric {name!r}; known: {KNOWN_HINT}", field=field)


def _known_metric(name: str) -> Metric | None:
    if name in FUNDAMENTALS:
        return Metric(name, "fundamental", FUNDAMENTALS[name])
    if name in TEXT_METRICS:
        return Metric(name, "text", TEXT_METRICS[name])
    if name == "close":
        return Metric(name, "indicator", "Close", "close", 1)
    for family, (pattern, label) in INDICATOR_PATTERNS.items():
        match = pattern.match(name)
        if match and 1 <= int(match.group(1)) <= MAX_WINDOW:
            window = int(match.group(1))
            return Metric(name, "indicator", label.format(n=window), family, window)
    return None


@dataclass(frozen=True)
class Condition:
    """``metric operator value`` or ``metric operator other``."""

    metric: Metric
    operator: str
    value: float | str | None = None
    other: Metric | None = None

    def holds(self, metrics: Mapping[str, Any]) -> bool:
        left = metrics.get(self.metric.name)
        right = metrics.get(self.other.name) if self.other else self.value
        if left is None or right is None:
            return False
        return OPERATORS[self.operator](left, right)

    @property
    def metrics(self) -> list[Metric]:
        return [self.metric] + ([self.other] if self.other else [])

    def as_dict(self) -> dict[str, Any]:
        if self.other is not None:
            return {"metric": self.metric.name, "operator": self.operator, "other": self.other.name}
        return {"metric": self.metric.name, "operator": self.operator, "value": self.value}

    def in_words(self) -> str:
        """``P/E below 15``, ``Close above SMA(50)``."""
        right = self.other.label if self.other else _number_words(self.value)
        return f"{self.metric.label} {OPERATOR_WORDS[self.operator]} {right}"


def _number_words(value: float | str | None) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def parse_condition(raw: object, field: str) -> Condition:
    """One condition from its JSON form, checked; ``field`` is like ``conditions.0``."""
    if not isinstance(raw, Mapping):
        raise ValidationError("a condition is an object with metric, operator, value", field=field)
    metric = parse_metric(raw.get("metric"), f"{field}.metric")
    op = raw.get("operator")
    allowed = TEXT_OPERATORS if metric.kind == "text" else tuple(OPERATORS)
    if op not in allowed:
        raise ValidationError(
            f"unknown operator {op!r} for {metric.name}; known: {', '.join(allowed)}",
            field=f"{field}.operator",
        )
    if "other" in raw and raw.get("other") is not None:
        other = parse_metric(raw["other"], f"{field}.other")
        if (other.kind == "text") != (metric.kind == "text"):
            raise ValidationError(
                f"cannot compare {metric.name} with {other.name}", field=f"{field}.other"
            )
        return Condition(metric, str(op), other=other)
    return Condition(metric, str(op), value=_value(metric, raw.get("value"), f"{field}.value"))


def _value(metric: Metric, value: object, field: str) -> float | str:
    if metric.kind == "text":
        if not isinstance(value, str) or not value:
            raise ValidationError(f"{metric.name} compares with a text value", field=field)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{metric.name} compares with a number", field=field)
    return float(value)


def parse_conditions(raw: object) -> list[Condition]:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ValidationError(
            "a strategy needs a list of at least one condition", field="conditions"
        )
    return [parse_condition(item, f"conditions.{i}") for i, item in enumerate(raw)]


# -- computing metrics --------------------------------------------------------------------


def sma(closes: Sequence[float], window: int) -> float | None:
    if len(closes) < window:
        return None
    return sum(closes[-window:]) / window


def ema(closes: Sequence[float], window: int) -> float | None:
    if len(closes) < window:
        return None
    alpha = 2 / (window + 1)
    value = sum(closes[:window]) / window
    for close in closes[window:]:
        value = alpha * close + (1 - alpha) * value
    return value


def rsi(closes: Sequence[float], window: int) -> float | None:
    """Wilder's relative strength index."""
    if len(closes) <= window:
        return None
    changes = [b - a for a, b in itertools.pairwise(closes)]
    gain = sum(max(c, 0.0) for c in changes[:window]) / window
    loss = sum(max(-c, 0.0) for c in changes[:window]) / window
    for change in changes[window:]:
        gain = (gain * (window - 1) + max(change, 0.0)) / window
        loss = (loss * (window - 1) + max(-change, 0.0)) / window
    if loss == 0:
        return 100.0
    return 100 - 100 / (1 + gain / loss)


def period_return(closes: Sequence[float], days: int) -> float | None:
    if len(closes) <= days or closes[-1 - days] == 0:
        return None
    return 100 * (closes[-1] / closes[-1 - days] - 1)


def volatility(closes: Sequence[float], days: int) -> float | None:
    """Annualised standard deviation of daily log returns, in percent."""
    if len(closes) <= days or days < 2:
        return None
    window = closes[-1 - days :]
    returns = [math.log(b / a) for a, b in itertools.pairwise(window) if a > 0 < b]
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    return 100 * math.sqrt(variance * 252)


def average(values: Sequence[float], days: int) -> float | None:
    if len(values) < days:
        return None
    return sum(values[-days:]) / days


def indicator(metric: Metric, closes: Sequence[float], volumes: Sequence[float]) -> float | None:
    n = metric.window
    if metric.family == "close":
        return closes[-1] if closes else None
    if metric.family == "sma":
        return sma(closes, n)
    if metric.family == "ema":
        return ema(closes, n)
    if metric.family == "rsi":
        return rsi(closes, n)
    if metric.family == "return":
        return period_return(closes, n)
    if metric.family == "volatility":
        return volatility(closes, n)
    return average(volumes, n)


def catalog() -> dict[str, Any]:
    """The metrics and operators the UI offers."""
    metrics = [{"name": n, "label": label, "kind": "text"} for n, label in TEXT_METRICS.items()]
    metrics += [{"name": n, "label": lb, "kind": "fundamental"} for n, lb in FUNDAMENTALS.items()]
    for name in INDICATOR_EXAMPLES:
        known = _known_metric(name)
        assert known is not None
        metrics.append({"name": name, "label": known.label, "kind": "indicator"})
    return {"metrics": metrics, "operators": list(OPERATORS)}
