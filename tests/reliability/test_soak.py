"""A soak: runs at a steady rate through nginx for two minutes, with streams open, while the
memory of every process and the site's database connections are sampled. After a warm-up
both must stay flat, and every run must have completed exactly once."""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import psycopg
from reliability_harness import (
    Site,
    lifecycle_problems,
    open_streams,
    stream_problems,
    submit,
    wait_for_streams,
    wait_until_settled,
)

SOAK_SECONDS = 120.0
RATE = 5.0  # runs per second
SAMPLE_SECONDS = 5.0
WARM_UP_SECONDS = 30.0
# A process may grow this much between the two halves after the warm-up (allocator noise,
# the SSE ring and the state cache filling towards their bounds): about 1,800 events arrive
# in the second half, so a leak of what is sent (~5 KiB an event) fails it; a leak of a few
# hundred bytes an event would take a longer soak to show.
RSS_SLACK_BYTES = 8 * 1024 * 1024
MiB = 1024 * 1024


def test_memory_and_connections_stay_flat_under_a_steady_load(own_site: Site) -> None:
    site = own_site
    watched = [*site.processes, site.nginx]
    samples: list[tuple[float, dict[str, int], int]] = []
    task_ids: list[str] = []
    with httpx.Client(timeout=30.0) as client:
        head = client.get(f"{site.url}/api/tasks").json()["position"]
        recorders = open_streams(site.url, 2, head)
        started = time.monotonic()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(SAMPLE_SECONDS):
                rss = {p.name: p.rss_bytes() for p in watched}
                try:
                    connections = site.database_connections()
                except psycopg.OperationalError:  # the shared server is full: skip this one
                    continue
                samples.append((time.monotonic() - started, rss, connections))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        next_at = started
        while time.monotonic() - started < SOAK_SECONDS:
            task_ids.append(submit(client, site.url))
            if len(task_ids) % 20 == 0:
                client.get(f"{site.url}/api/tasks", params={"limit": 50}).raise_for_status()
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))
        stop.set()
        sampler.join()
        wait_until_settled(client, site.url, len(task_ids), timeout=120)
        per_task, problems = lifecycle_problems(client, site.url, task_ids)
    last = max(e["position"] for events in per_task.values() for e in events)
    wait_for_streams(recorders, last)

    warm = [s for s in samples if s[0] >= WARM_UP_SECONDS]
    assert len(warm) >= 6, f"only {len(warm)} samples after the warm-up: nothing to compare"
    early, late = warm[: len(warm) // 2], warm[len(warm) // 2 :]
    growth = {}
    for process in watched:
        before = statistics.median(s[1][process.name] for s in early)
        after = statistics.median(s[1][process.name] for s in late)
        growth[process.name] = (before, after)
    connections_before = max(s[2] for s in early)
    connections_after = max(s[2] for s in late)
    rate = len(task_ids) / SOAK_SECONDS
    print(
        f"\nsoak: {len(task_ids)} runs in {SOAK_SECONDS:.0f}s ({rate:.1f}/s), "
        f"{len(samples)} samples; RSS MiB (median of each half after the warm-up): "
        + ", ".join(f"{n} {b / MiB:.0f}->{a / MiB:.0f}" for n, (b, a) in growth.items())
        + f"; database connections {connections_before} -> {connections_after}"
    )
    assert problems == [], problems[:5]
    assert stream_problems(recorders, per_task) == []
    assert all(p.alive() for p in watched)
    grown = {n: (b, a) for n, (b, a) in growth.items() if a - b > RSS_SLACK_BYTES}
    assert grown == {}, f"memory kept growing: {grown}"
    assert connections_after <= connections_before + 2, "database connections kept growing"
