"""SSE fan-out: N concurrent `/api/stream` clients on ONE `tasktrail serve` process while a
feed submits tasks at a fixed rate (each submission is one `task.created` event).

    .venv/bin/python benchmarks/sse_fanout.py                 # 250, 1000, 2000 streams, SQLite
    .venv/bin/python benchmarks/sse_fanout.py --quick         # shorter feed, same N
    .venv/bin/python benchmarks/sse_fanout.py --backend postgres --streams 2000

A fresh server per N (so its peak RSS belongs to that N). The load generator is a separate
process (this file with ``--client``): raw asyncio sockets speaking HTTP/1.0, so the body is
the bare event stream. Latency is receipt time minus the event's ``timestamp`` (when it was
created, just before its commit), same host clock. Per N it reports delivered events/s,
latency p50/p99/max, the server's CPU seconds and peak RSS (VmHWM) over the run, and the
load generator's own CPU. Saves JSON under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from _common import save
from rebuild_rate import database

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import Process, start_serve

TIMESTAMP = re.compile(rb'"timestamp":"([^"]+)"')
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SUBMISSION = {"kind": "tasktrail.sleep", "parameters": {"seconds": 0}}
DRAIN_SECONDS = 60.0  # after the feed, how long the clients may take to receive the rest


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (2,000 sockets need more than 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the load generator (a separate process) -------------------------------------------------


class Receiver:
    """Counts events and their latencies across every stream of the load generator."""

    def __init__(self) -> None:
        self.latencies = array("d")
        self.events = 0
        self.epochs: dict[bytes, float] = {}  # one event reaches every stream: parse it once

    def feed(self, block: bytes, received: float) -> None:
        for stamp in TIMESTAMP.findall(block):
            epoch = self.epochs.get(stamp)
            if epoch is None:
                epoch = datetime.fromisoformat(stamp.decode()).timestamp()
                self.epochs[stamp] = epoch
            self.latencies.append(received - epoch)
            self.events += 1


async def open_stream(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /api/stream HTTP/1.0\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"stream refused: {head[:200]!r}")
    return reader, writer


async def read_stream(reader: asyncio.StreamReader, receiver: Receiver) -> None:
    pending = b""
    while chunk := await reader.read(65536):
        received = time.time()
        pending += chunk
        end = pending.rfind(b"\n")  # complete lines only: a timestamp may straddle reads
        if end < 0:
            continue
        receiver.feed(pending[:end], received)
        pending = pending[end + 1 :]


async def open_all(host: str, port: int, streams: int) -> list[Any]:
    gate = asyncio.Semaphore(100)  # don't overrun the listen backlog

    async def one() -> Any:
        async with gate:
            return await open_stream(host, port)

    return list(await asyncio.gather(*(one() for _ in range(streams))))


async def client_main(host: str, port: int, streams: int, drain_seconds: float) -> None:
    receiver = Receiver()
    began = time.monotonic()
    connections = await open_all(host, port, streams)
    connect_seconds = time.monotonic() - began
    readers = [asyncio.create_task(read_stream(r, receiver)) for r, _ in connections]
    cpu_before = time.process_time()
    print(json.dumps({"ready": True, "connect_seconds": round(connect_seconds, 2)}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    expected = int(line.split()[1]) * streams  # "stop <events fed>"
    stopped = time.monotonic()
    while receiver.events < expected and time.monotonic() - stopped < drain_seconds:
        await asyncio.sleep(0.05)
    drained = time.monotonic() - stopped
    cpu = time.process_time() - cpu_before
    for task in readers:
        task.cancel()
    for _, writer in connections:
        writer.close()
    latencies = sorted(receiver.latencies)
    figures = {"events": receiver.events, "cpu_seconds": cpu, "drain_seconds": drained}
    print(json.dumps({**figures, **percentiles(latencies)}), flush=True)


def percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}

    def at(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(1000 * latencies[-1], 2)}


# -- the server's figures from /proc ----------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


# -- the feed and one run ---------------------------------------------------------------------


async def feed(base: str, rate: float, seconds: float) -> dict[str, Any]:
    """POST a submission every 1/rate s, not waiting for the previous ones to answer."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def submit() -> float | None:
            began = time.perf_counter()
            try:
                response = await client.post("/api/tasks", json=SUBMISSION)
            except httpx.HTTPError:
                return None
            return time.perf_counter() - began if response.status_code == 202 else None

        total = int(rate * seconds)
        sent: list[asyncio.Task[float | None]] = []
        start = time.perf_counter()
        for i in range(total):
            await asyncio.sleep(max(0.0, i / rate - (time.perf_counter() - start)))
            sent.append(asyncio.create_task(submit()))
        answers = [a for a in await asyncio.gather(*sent) if a is not None]
        took = time.perf_counter() - start
    return {
        "events_fed": len(answers),
        # Below ``rate`` when the server answers the submissions late (it is saturated).
        "feed_achieved_events_per_second": round(len(answers) / took, 1),
        "submissions_failed": total - len(answers),
        "submit_p99_ms": percentiles(sorted(answers))["p99_ms"],
    }


def start_client(port: int, streams: int, drain_seconds: float) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--client", "--port", str(port), "--streams", str(streams)]
    argv += ["--drain", str(drain_seconds)]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def measure(server: Process, streams: int, rate: float, seconds: float) -> dict[str, Any]:
    assert server.port is not None
    client = start_client(server.port, streams, DRAIN_SECONDS)
    assert client.stdin is not None
    assert client.stdout is not None
    try:
        ready = json.loads(client.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise RuntimeError(f"load generator failed: {client.wait(timeout=30)}")
        cpu_before, began = cpu_seconds(server.pid), time.monotonic()
        fed = asyncio.run(feed(f"http://127.0.0.1:{server.port}", rate, seconds))
        client.stdin.write(f"stop {fed['events_fed']}\n")
        client.stdin.flush()
        figures = json.loads(client.stdout.readline())  # once every event arrived, or later
        elapsed = time.monotonic() - began
        server_cpu = cpu_seconds(server.pid) - cpu_before
        load = os.getloadavg()[0]  # the host is shared: say how busy it was
    finally:
        client.wait(timeout=60)
    expected = fed["events_fed"] * streams
    return {
        "streams": streams,
        "feed_events_per_second": rate,
        "feed_seconds": seconds,
        **fed,
        "connect_seconds": ready["connect_seconds"],
        "events_delivered": figures["events"],
        "delivered_ratio": round(figures["events"] / expected, 4) if expected else None,
        "drain_seconds": round(figures["drain_seconds"], 2),
        # Over the feed and the drain after it: what the server sustained.
        "delivered_events_per_second": round(figures["events"] / elapsed),
        "expected_events_per_second": round(rate * streams),
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "max_ms": figures["max_ms"],
        "server_cpu_seconds": round(server_cpu, 2),
        "server_cpu_percent": round(100 * server_cpu / elapsed, 1),
        "server_peak_rss_mib": round(peak_rss_bytes(server.pid) / 2**20, 1),
        "client_cpu_seconds": round(figures["cpu_seconds"], 2),
        "client_cpu_percent": round(100 * figures["cpu_seconds"] / elapsed, 1),
        "host_cpus": os.cpu_count(),
        "host_load_1m": round(load, 2),
    }


def run(backend: str, streams: int, rate: float, seconds: float) -> dict[str, Any]:
    with database(backend) as url, tempfile.TemporaryDirectory() as logs:
        server = start_serve("serve", url, Path(logs), settings={"log_level": "warning"})
        try:
            return {"backend": backend, **measure(server, streams, rate, seconds)}
        finally:
            server.stop(timeout=30)


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("backend", "backend"),
        ("streams", "streams"),
        ("fed/s", "feed_achieved_events_per_second"),
        ("delivered/s", "delivered_events_per_second"),
        ("expected/s", "expected_events_per_second"),
        ("ratio", "delivered_ratio"),
        ("drain s", "drain_seconds"),
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("max ms", "max_ms"),
        ("srv CPU s", "server_cpu_seconds"),
        ("srv CPU %", "server_cpu_percent"),
        ("srv RSS MiB", "server_peak_rss_mib"),
        ("gen CPU s", "client_cpu_seconds"),
        ("gen CPU %", "client_cpu_percent"),
        ("load 1m", "host_load_1m"),
    ]
    print("  ".join(f"{title:>11}" for title, _ in columns))
    for row in rows:
        print("  ".join(f"{row[key]!s:>11}" for _, key in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[250, 1000, 2000])
    parser.add_argument("--rate", type=float, default=50.0, help="feed events per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the feed runs")
    parser.add_argument("--quick", action="store_true", help="a 5 s feed")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--drain", type=float, default=DRAIN_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files_limit()
    if args.client:
        asyncio.run(client_main("127.0.0.1", args.port, args.streams[0], args.drain))
        return
    seconds = 5.0 if args.quick else args.seconds
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    rows = [run(b, n, args.rate, seconds) for b in backends for n in args.streams]
    print_table(rows)
    out = save("sse_fanout.json", rows)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
