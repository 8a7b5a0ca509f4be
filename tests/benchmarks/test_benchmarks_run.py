"""Every benchmark runs end to end, small: a script that no longer runs is found here, not
the next time someone needs its figures. Nothing about speed is asserted (the figures of a
run this small mean nothing); each must exit 0 and save a non-empty JSON list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.processes import nginx_available

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SMALL = {
    "append_rate": (["--events", "50", "--repeat", "1"], "append_rate.json"),
    "worker_throughput": (
        ["--tasks", "20", "--concurrency", "2", "--repeat", "1", "--rate", "10", "--seconds", "1"],
        "worker_throughput.json",
    ),
    "sse_latency": (["--rate", "10", "--seconds", "1"], "sse_latency.json"),
    "sse_fanout": (["--streams", "10", "--seconds", "1"], "sse_fanout.json"),
    "projection_lag": (["--rate", "10", "--seconds", "1"], "projection_lag.json"),
    "rebuild_rate": (["--events", "200"], "rebuild_rate_200.json"),
    "audit_cleanup": (["--tasks", "50"], "audit_cleanup.json"),
    "api_latency": (["--tasks", "1200", "--requests", "10"], "api_latency.json"),  # 2 pages deep
    "sse_nginx": (["--rate", "10", "--seconds", "1", "--repeat", "1"], "sse_nginx.json"),
}
NEEDS_NGINX = {"sse_nginx", "scale_out"}
# PostgreSQL only: K worker processes (behind nginx for scale_out, which has no --backend;
# worker_throughput's split figures read the worker process's writer summary from its log).
SMALL_POSTGRES = {
    "scale_out": (["--runs", "20", "--workers", "1", "--repeat", "1"], "scale_out.json"),
    "worker_throughput split": (
        [
            *["--tasks", "20", "--concurrency", "2", "--repeat", "1", "--rate", "10"],
            *["--seconds", "1", "--worker-processes", "1", "--backend", "postgres"],
        ],
        "worker_throughput.json",
    ),
}


@pytest.mark.parametrize("name", [*sorted(SMALL), *sorted(SMALL_POSTGRES)])
def test_the_benchmark_runs_and_saves_its_figures(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if name in NEEDS_NGINX and not nginx_available():
        pytest.skip("nginx is not installed (scripts/test installs it)")
    if name in SMALL_POSTGRES:
        request.getfixturevalue("postgres_url")  # skips (fails under CI) without PostgreSQL
        arguments, saved = SMALL_POSTGRES[name]
    else:
        arguments, saved = SMALL[name]
        arguments = [*arguments, "--backend", "sqlite"]
    env = {**os.environ, "TASKTRAIL_BENCHMARK_RESULTS": str(tmp_path)}
    script = name.split()[0]
    if script == "worker_throughput":
        arguments = [*arguments, "--output", str(tmp_path / saved)]
    finished = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    figures = json.loads((tmp_path / saved).read_text())
    assert isinstance(figures, list), figures
    assert figures, "no figures saved"
    assert all(isinstance(figure, dict) and figure for figure in figures), figures
    if name.endswith(" split"):
        assert [f["writer_max_wait_ms"] for f in figures if f["figure"] == "split"], figures
