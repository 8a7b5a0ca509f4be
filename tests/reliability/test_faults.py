"""Faults under load: kill -9 of a worker, of the active projector's process and of a serve
node, and a PostgreSQL restart. Afterwards no task is left RUNNING, every task has one
Started at most and exactly one terminal event, the task view agrees with the log, and every
SSE client (through nginx, reconnecting with Last-Event-ID) saw every event once, in order."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
from reliability_harness import (
    LEASE_SECONDS,
    Site,
    lifecycle_problems,
    open_streams,
    stream_problems,
    submit,
    wait_for_streams,
    wait_until_settled,
)
from support.processes import PostgresCluster, Process, start_worker, wait_until

from tasktrail.engine.locks import REAPER_LOCK_KEY

RUNS = 240
# Long enough that the killed worker has runs in hand, short enough that the load is brief.
WORK = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0.4, "steps": 4}}


def submit_in_background(site: Site, runs: int, pace: float) -> Future[list[str]]:
    """Submit ``runs`` runs from 4 clients, each pausing ``pace`` seconds between posts."""
    pool = ThreadPoolExecutor(4)

    def client_share(share: int) -> list[str]:
        with httpx.Client(timeout=30.0) as own:
            ids = []
            for _ in range(share):
                ids.append(submit(own, site.url, WORK))
                time.sleep(pace)
            return ids

    shares = [pool.submit(client_share, runs // 4) for _ in range(4)]
    done: Future[list[str]] = Future()

    def gather() -> None:
        try:
            done.set_result([i for share in shares for i in share.result()])
        except BaseException as error:
            done.set_exception(error)
        finally:
            pool.shutdown(wait=False)

    threading.Thread(target=gather, daemon=True).start()
    return done


def running_count(client: httpx.Client, site: Site) -> int:
    try:
        return int(client.get(f"{site.url}/api/tasks").json()["counts"].get("RUNNING", 0))
    except (httpx.HTTPError, ValueError, KeyError):
        return 0


def busy_worker(site: Site, candidates: list[Process]) -> Process:
    """The candidate with the most runs in hand, once one holds at least two: early in the
    load a few fast claims can leave a given worker idle, and killing an idle one proves
    nothing about leases."""
    chosen: list[Process] = []

    def holds_runs() -> bool:
        running = site.running_by_pid()
        busiest = max(candidates, key=lambda w: running.get(w.pid, 0))
        chosen[:] = [busiest]
        return running.get(busiest.pid, 0) >= 2

    wait_until(holds_runs, 60, "a worker with runs in hand", interval=0.05)
    return chosen[0]


def test_kill_9_of_a_worker_the_projector_and_a_serve_node_loses_and_doubles_nothing(
    own_site: Site,
) -> None:
    site = own_site
    with httpx.Client(timeout=30.0) as client:
        head = client.get(f"{site.url}/api/tasks").json()["position"]
        recorders = open_streams(site.url, 4, head)
        submitted = submit_in_background(site, RUNS, pace=0.05)
        wait_until(lambda: running_count(client, site) >= 4, 60, "runs in progress")

        killed: list[Process] = []
        projector, _ = site.wait_for_projector()
        reaper = site.projector_process(REAPER_LOCK_KEY)
        worker = busy_worker(site, [w for w in site.workers if w is not projector])
        worker.kill9()
        killed.append(worker)
        time.sleep(1.0)
        projector, _ = site.wait_for_projector()
        projector.kill9()
        killed.append(projector)
        killed_at = time.monotonic()
        if projector not in site.nodes:
            site.nodes[0].kill9()
            killed.append(site.nodes[0])
        successor, takeover = site.wait_for_projector()

        task_ids = submitted.result(timeout=300)
        settled = wait_until_settled(client, site.url, RUNS, timeout=LEASE_SECONDS * 5 + 120)
        reaper_after = site.projector_process(REAPER_LOCK_KEY)
        after_kill = time.monotonic() - killed_at
        per_task, problems = lifecycle_problems(client, site.url, task_ids)
    last = max(e["position"] for events in per_task.values() for e in events)
    wait_for_streams(recorders, last)

    lost = [
        t for t, events in per_task.items()
        if events[-1]["type"] == "task.failed" and events[-1]["data"]["reason"] == "worker_lost"
    ]  # fmt: skip
    others = [t for t, events in per_task.items() if events[-1]["type"] != "task.completed"]
    print(
        f"\nkilled {[p.name for p in killed]}; projector taken over by {successor.name} after "
        f"{takeover:.2f}s; reaper {reaper.name if reaper else None} -> "
        f"{reaper_after.name if reaper_after else None}; {len(task_ids)} runs settled "
        f"{after_kill:.1f}s after the kills "
        f"(last wait {settled:.1f}s); {len(lost)} failed worker_lost, "
        f"{len(task_ids) - len(others)} completed; streams got "
        f"{[len(r.positions()) for r in recorders]} events over "
        f"{[r.connections for r in recorders]} connections"
    )
    assert problems == [], problems[:5]
    assert set(others) == set(lost), "a run ended otherwise than completed or worker_lost"
    assert lost, "the killed worker had no run in hand: the test proved nothing about leases"
    assert successor in site.alive(site.processes)
    assert successor not in killed
    assert reaper_after is not None, "no reaper active after the kills"
    assert reaper_after not in killed
    assert stream_problems(recorders, per_task) == []
    assert any(r.connections > 1 for r in recorders), "no stream was on the killed node"


def test_a_postgresql_restart_mid_load_recovers_by_itself_with_nothing_lost(
    cluster_site: tuple[Site, PostgresCluster],
) -> None:
    site, cluster = cluster_site
    with httpx.Client(timeout=30.0) as client:
        head = client.get(f"{site.url}/api/tasks").json()["position"]
        recorders = open_streams(site.url, 2, head)
        submitted = submit_in_background(site, RUNS // 2, pace=0.05)
        wait_until(lambda: running_count(client, site) >= 4, 60, "runs in progress")
        cluster.stop("fast")
        down = time.monotonic()
        # A process started while the database is away waits for it instead of exiting.
        late = site.fleet.add(
            start_worker("worker4", site.database_url, site.fleet.log_dir, settings=site.settings)
        )
        time.sleep(3.0)
        cluster.start()
        task_ids = submitted.result(timeout=300)
        settled = wait_until_settled(client, site.url, len(task_ids), timeout=180)
        recovered = time.monotonic() - down
        per_task, problems = lifecycle_problems(client, site.url, task_ids)
        site.wait_for_workers([late])
    last = max(e["position"] for events in per_task.values() for e in events)
    wait_for_streams(recorders, last)
    outcomes = [events[-1]["type"] for events in per_task.values()]
    reasons = sorted(
        {e[-1]["data"].get("reason") for e in per_task.values() if e[-1]["type"] == "task.failed"}
    )
    print(
        f"\nPostgreSQL down 3 s; {len(task_ids)} runs settled {recovered:.1f}s after it went "
        f"down (last wait {settled:.1f}s): {outcomes.count('task.completed')} completed, "
        f"{outcomes.count('task.failed')} failed {reasons}; streams got "
        f"{[len(r.positions()) for r in recorders]} events over "
        f"{[r.connections for r in recorders]} connections; a worker started during the "
        f"outage registered after it; all alive: {all(p.alive() for p in site.processes)}"
    )
    assert problems == [], problems[:5]
    # The leases outlast the outage: the runs in hand when it began complete as well.
    assert outcomes.count("task.completed") == len(task_ids), reasons
    dead = [f"{p.name}:\n{p.log_tail(30)}" for p in site.processes if not p.alive()]
    assert dead == [], "a process died instead of reconnecting"
    assert stream_problems(recorders, per_task) == []
