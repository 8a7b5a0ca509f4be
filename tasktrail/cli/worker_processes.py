"""``serve --worker-processes K``: the workers in K ``tasktrail worker`` children of serve.

Worker threads share the server's GIL with the HTTP app, the SSE streams, the follower and
the projector: a CPU-bound screening run slows every stream, and on PostgreSQL one process
tops out well below what the database can commit (docs/benchmarks.md, the split rows). With
``--worker-processes K`` serve runs no worker threads itself; it starts K children, each
``tasktrail worker`` with ``--workers`` threads and serve's own settings, after its own
start-up (migrations, seeding, the embedded orphan check), and keeps them running:

- a child that exits while serve runs is started again, after 1 s, doubling up to 30 s while
  it keeps dying young; the RUNNING tasks it left are failed (worker_lost) at once, not when
  its lease expires;
- serve's stop sends SIGTERM to every child, and SIGKILL to one still running after
  ``STOP_SECONDS`` (its runs are then failed by the next reaper pass, as for any lost worker);
- a child whose parent is gone (serve killed with SIGKILL) stops by itself (``--supervised-by``).

The children leave projecting to serve (its projector keeps the work queue they claim from).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tasktrail.settings import Settings

log = logging.getLogger(__name__)

STOP_SECONDS = 8.0
WATCH_SECONDS = 0.2
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
# A child that lived this long before it exited is restarted after the first delay again.
HEALTHY_SECONDS = 60.0


@dataclass
class _Child:
    number: int
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_delay: float = FIRST_RESTART_SECONDS
    restart_at: float = 0.0


class WorkerProcesses:
    """K supervised ``tasktrail worker`` children; ``on_exit(pid)`` is called for each one
    that exited while it should have been running."""

    def __init__(self, settings: Settings, on_exit: Callable[[int], object]) -> None:
        self.settings = settings
        self.on_exit = on_exit
        self.children = [_Child(number) for number in range(settings.worker_processes)]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "tasktrail", "worker", "--supervised-by", str(os.getpid())]

    def environment(self) -> dict[str, str]:
        """serve's settings for a child: its threads, no seeding (serve did it)."""
        child = self.settings.replace(worker_processes=0, seed_examples=False)
        return {**os.environ, **child.environment()}

    def start(self) -> None:
        self._stopping.clear()
        for child in self.children:
            self._launch(child)
        self._thread = threading.Thread(target=self._watch, name="worker-processes", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM to every child, then SIGKILL to those still running after ``timeout``."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        running = [c.popen for c in self.children if c.popen and c.popen.poll() is None]
        for popen in running:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for popen in running:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in %.0f s; killed", popen.pid, timeout)
                popen.kill()
                popen.wait()

    def _launch(self, child: _Child) -> None:
        child.popen = subprocess.Popen(
            self.argv(), env=self.environment(), stdin=subprocess.DEVNULL
        )
        child.started_at = time.monotonic()
        log.info(
            "worker process %d started (pid %d, %d threads)",
            child.number,
            child.popen.pid,
            self.settings.workers,
        )

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            for child in self.children:
                try:
                    self._look_after(child)
                except Exception:
                    log.exception("looking after worker process %d failed", child.number)

    def _look_after(self, child: _Child) -> None:
        moment = time.monotonic()
        if child.popen is None:  # waiting to be started again
            if moment >= child.restart_at:
                self._launch(child)
            return
        code = child.popen.poll()
        if code is None:
            return
        pid, child.popen = child.popen.pid, None
        if moment - child.started_at >= HEALTHY_SECONDS:
            child.restart_delay = FIRST_RESTART_SECONDS
        child.restart_at = moment + child.restart_delay
        log.error(
            "worker process %d (pid %d) exited with %s; starting it again in %.0f s",
            child.number,
            pid,
            code,
            child.restart_delay,
        )
        child.restart_delay = min(MAX_RESTART_SECONDS, 2 * child.restart_delay)
        self.on_exit(pid)
