"""Stock universes: a bundled synthetic sample, and a user's own CSV file.

The sample universe is SYNTHETIC: deterministic random walks and made-up fundamentals from a
seeded generator, for demonstrations and tests; it says nothing about real companies. It is
generated lazily in code (never stored) and cached in memory, and it is fetched in batches
with a delay per batch that stands in for a remote data source, so a run takes a few seconds
and its progress can be watched.

CSV format (docs/screening.md): one row per symbol and trading day, header required:
``symbol,date,close`` and optionally ``volume,name,sector,market_cap,pe,pb,roe,
dividend_yield,revenue_growth,debt_to_equity``. Rows of a symbol may come in any order
(they are ordered by date here; a date twice for one symbol is an error); each of its
fundamentals, its name and its sector come from its latest-dated row that has them.
"""

from __future__ import annotations

import csv
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

from tasktrail.errors import TasktrailError, ValidationError

SAMPLE_SIZE = 5_000
SAMPLE_BARS = 260
SAMPLE_SEED = 20_261_202
BATCH_SIZE = 100
SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)
NUMBER_COLUMNS = (
    "market_cap",
    "pe",
    "pb",
    "roe",
    "dividend_yield",
    "revenue_growth",
    "debt_to_equity",
)
REQUIRED_COLUMNS = ("symbol", "date", "close")


class UniverseError(TasktrailError):
    """A universe that cannot be read (a malformed CSV file, a path outside the root)."""


@dataclass(frozen=True)
class Stock:
    """One symbol: its fundamentals and its daily closes and volumes, oldest first."""

    symbol: str
    name: str
    sector: str | None
    fundamentals: dict[str, float | None]
    closes: tuple[float, ...]
    volumes: tuple[float, ...] = field(default=())


class Universe(Protocol):
    """Where a run gets its stocks: how many, then batch after batch."""

    def total(self) -> int: ...

    def batches(self) -> Iterator[list[Stock]]: ...


# -- the synthetic sample -------------------------------------------------------------------


def _symbol(index: int) -> str:
    """Four letters, spread over the alphabet; unique for every index below 26**4."""
    code = (index * 7919 + 104_729) % 26**4
    letters = []
    for _ in range(4):
        code, letter = divmod(code, 26)
        letters.append(chr(ord("A") + letter))
    return "".join(letters)


def synthetic_stock(index: int, *, seed: int = SAMPLE_SEED, bars: int = SAMPLE_BARS) -> Stock:
    """Symbol number ``index`` of the sample: the same for the same seed, every time."""
    rng = random.Random(seed * 100_003 + index)
    drift = rng.gauss(0.0003, 0.0012)
    sigma = rng.uniform(0.008, 0.035)
    regime = rng.random()
    price = math.exp(rng.uniform(math.log(3), math.log(400)))
    base_volume = math.exp(rng.uniform(math.log(5e4), math.log(2e7)))
    closes, volumes = [], []
    for day in range(bars):
        mu = drift
        if day >= bars - 20 and regime < 0.08:
            mu = -0.012  # a recent slide (oversold candidates)
        elif day >= bars - 63 and regime > 0.92:
            mu = 0.006  # a strong quarter (momentum candidates)
        price *= math.exp(mu - sigma * sigma / 2 + sigma * rng.gauss(0, 1))
        closes.append(round(price, 4))
        volumes.append(round(base_volume * math.exp(rng.gauss(0, 0.3))))
    shares = math.exp(rng.uniform(math.log(2e7), math.log(5e9)))
    profitable = rng.random() > 0.08
    fundamentals: dict[str, float | None] = {
        "market_cap": round(closes[-1] * shares, 0),
        "pe": round(math.exp(rng.gauss(math.log(18), 0.5)), 2) if profitable else None,
        "pb": round(math.exp(rng.gauss(math.log(2.5), 0.6)), 2),
        "roe": round(rng.gauss(12, 8), 2),
        "dividend_yield": round(rng.uniform(0.3, 6.0), 2) if rng.random() < 0.6 else 0.0,
        "revenue_growth": round(rng.gauss(6, 12), 2),
        "debt_to_equity": round(math.exp(rng.gauss(math.log(0.8), 0.7)), 2),
    }
    symbol = _symbol(index)
    return Stock(
        symbol=symbol,
        name=f"{symbol} Synthetic Co. (sample data)",
        sector=SECTORS[rng.randrange(len(SECTORS))],
        fundamentals=fundamentals,
        closes=tuple(closes),
        volumes=tuple(float(v) for v in volumes),
    )


class _SampleCache:
    """Generated stocks, per (seed, bars), kept for the life of the process."""

    def __init__(self) -> None:
        self._stocks: dict[tuple[int, int, int], Stock] = {}
        self._lock = threading.Lock()

    def get(self, index: int, seed: int, bars: int) -> Stock:
        key = (seed, bars, index)
        with self._lock:
            found = self._stocks.get(key)
        if found is None:
            found = synthetic_stock(index, seed=seed, bars=bars)
            with self._lock:
                self._stocks[key] = found
        return found


SAMPLE_CACHE = _SampleCache()


class SampleUniverse:
    """The bundled synthetic universe, fetched in batches with a delay per batch."""

    def __init__(
        self,
        *,
        size: int = SAMPLE_SIZE,
        bars: int = SAMPLE_BARS,
        seed: int = SAMPLE_SEED,
        batch_size: int = BATCH_SIZE,
        batch_delay: float = 0.0,
    ) -> None:
        self.size = size
        self.bars = bars
        self.seed = seed
        self.batch_size = batch_size
        self.batch_delay = batch_delay

    def total(self) -> int:
        return self.size

    def batches(self) -> Iterator[list[Stock]]:
        for start in range(0, self.size, self.batch_size):
            if self.batch_delay > 0:
                time.sleep(self.batch_delay)  # stands in for a remote source's latency
            stop = min(self.size, start + self.batch_size)
            yield [SAMPLE_CACHE.get(i, self.seed, self.bars) for i in range(start, stop)]


# -- a user's CSV file ----------------------------------------------------------------------


def resolve_csv_path(path: object, csv_root: str | None) -> Path:
    """The file a strategy names; with ``csv_root`` set it must lie inside that folder."""
    if not isinstance(path, str) or not path.strip():
        raise ValidationError("a csv universe needs a path", field="universe.path")
    if csv_root is None:
        return Path(path).resolve()
    root = Path(csv_root).resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise ValidationError(f"path {path!r} is outside the CSV folder", field="universe.path")
    return resolved


@dataclass
class _Rows:
    # Each descriptive value with the date of the row it came from: the latest date wins,
    # wherever its row is in the file.
    name: tuple[date, str] | None = None
    sector: tuple[date, str] | None = None
    fundamentals: dict[str, tuple[date, float | None]] = field(default_factory=dict)
    bars: list[tuple[date, float, float]] = field(default_factory=list)
    lines: dict[date, int] = field(default_factory=dict)  # the line each date came from

    def keep(self, current: tuple[date, Any] | None, day: date, value: Any) -> Any:
        return (day, value) if current is None or day >= current[0] else current


class CsvUniverse:
    """Stocks read from one CSV file (format in the module docstring)."""

    def __init__(self, path: Path, *, batch_size: int = BATCH_SIZE) -> None:
        self.path = path
        self.batch_size = batch_size
        self._stocks: list[Stock] | None = None

    def stocks(self) -> list[Stock]:
        if self._stocks is None:
            self._stocks = read_csv_universe(self.path)
        return self._stocks

    def total(self) -> int:
        return len(self.stocks())

    def batches(self) -> Iterator[list[Stock]]:
        stocks = self.stocks()
        for start in range(0, len(stocks), self.batch_size):
            yield stocks[start : start + self.batch_size]


def read_csv_universe(path: Path) -> list[Stock]:
    """Parse a CSV universe; UniverseError naming file, line and column when malformed."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _parse(path, csv.reader(handle))
    except FileNotFoundError:
        raise UniverseError(f"{path.name}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise UniverseError(f"{path.name}: not a readable CSV file ({error})") from None


def _parse(path: Path, reader: Iterator[list[str]]) -> list[Stock]:
    header = next(reader, None)
    if header is None:
        raise UniverseError(f"{path.name} line 1: the file is empty (a header is required)")
    columns = [c.strip().lower() for c in header]
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            raise UniverseError(f"{path.name} line 1: missing column {required!r}")
    by_symbol: dict[str, _Rows] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            raise UniverseError(
                f"{path.name} line {line}: {len(row)} fields, the header has {len(columns)}"
            )
        _add_row(path, line, dict(zip(columns, row, strict=True)), columns, by_symbol)
    return [_stock(symbol, rows) for symbol, rows in sorted(by_symbol.items())]


def _cell_error(
    path: Path, line: int, columns: Sequence[str], column: str, message: str
) -> UniverseError:
    number = columns.index(column) + 1
    return UniverseError(f"{path.name} line {line}, column {number} ({column}): {message}")


def _add_row(
    path: Path, line: int, cells: dict[str, str], columns: Sequence[str], by: dict[str, _Rows]
) -> None:
    symbol = cells["symbol"].strip()
    if not symbol:
        raise _cell_error(path, line, columns, "symbol", "empty symbol")
    try:
        day = date.fromisoformat(cells["date"].strip())
    except ValueError:
        raise _cell_error(
            path, line, columns, "date", f"{cells['date']!r} is not a date (YYYY-MM-DD)"
        ) from None
    close = _number(path, line, columns, cells, "close", required=True)
    volume = (
        _number(path, line, columns, cells, "volume", required=False) if "volume" in cells else 0.0
    )
    rows = by.setdefault(symbol, _Rows())
    if day in rows.lines:
        raise _cell_error(
            path, line, columns, "date", f"{symbol} {day} is already on line {rows.lines[day]}"
        )
    rows.lines[day] = line
    rows.bars.append((day, close or 0.0, volume or 0.0))
    if name := cells.get("name", "").strip():
        rows.name = rows.keep(rows.name, day, name)
    if sector := cells.get("sector", "").strip():
        rows.sector = rows.keep(rows.sector, day, sector)
    for column in NUMBER_COLUMNS:
        if column in cells and cells[column].strip():
            value = _number(path, line, columns, cells, column, required=True)
            rows.fundamentals[column] = rows.keep(rows.fundamentals.get(column), day, value)


def _number(
    path: Path,
    line: int,
    columns: Sequence[str],
    cells: dict[str, str],
    column: str,
    *,
    required: bool,
) -> float | None:
    raw = cells.get(column, "").strip()
    if not raw:
        if required:
            raise _cell_error(path, line, columns, column, "empty value")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _cell_error(path, line, columns, column, f"{raw!r} is not a number") from None
    if not math.isfinite(value):
        raise _cell_error(path, line, columns, column, f"{raw!r} is not a finite number")
    return value


def _stock(symbol: str, rows: _Rows) -> Stock:
    bars = sorted(rows.bars)
    fundamentals: dict[str, Any] = {
        column: kept[1] if (kept := rows.fundamentals.get(column)) else None
        for column in NUMBER_COLUMNS
    }
    return Stock(
        symbol=symbol,
        name=rows.name[1] if rows.name else symbol,
        sector=rows.sector[1] if rows.sector else None,
        fundamentals=fundamentals,
        closes=tuple(bar[1] for bar in bars),
        volumes=tuple(bar[2] for bar in bars),
    )
