"""What every benchmark shares: where results go, saving them, a percentile.

Results go to benchmarks/results/ (git ignores it), or to $TASKTRAIL_BENCHMARK_RESULTS
(tests/benchmarks runs each script small and reads its file there).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULTS = Path(os.environ.get("TASKTRAIL_BENCHMARK_RESULTS") or Path(__file__).with_name("results"))


def save(name: str, results: object) -> Path:
    """Write ``results`` as JSON to RESULTS/``name``; returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(results, indent=2))
    return path


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``: the value at index floor(q * n) of the sorted."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
