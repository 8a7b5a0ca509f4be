"""The group-commit writer: records the new events of many tasks in one transaction.

One ``save()`` through eventsourcing's recorder costs several round trips and, on PostgreSQL,
an exclusive table lock held until commit, so one transaction per event caps the engine at a
few hundred events per second. Workers hand the events they collected from their aggregates
(``aggregate.collect_events()``) to this writer and wait; a single thread takes everything
waiting and records it with one ``store.save(*events)`` (eventsourcing's public API takes
domain events as well as aggregates). When that transaction fails on a conflict
(IntegrityError: another process appended to one of the tasks), the batch is recorded one
caller at a time, so only the caller whose task conflicts sees the error.

The events stay the caller's: after an error nothing was recorded, and the caller may pass
the same events again (or reload its aggregate and decide again after a conflict).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError

from tasktrail.engine.store import TaskStore

log = logging.getLogger(__name__)

MAX_BATCH = 512
RECENT_WAITS = 10_000
SAVE_TIMEOUT_SECONDS = 60.0


@dataclass
class _Pending:
    events: Sequence[Any]
    done: Future[None] = field(default_factory=Future)
    queued_at: float = field(default_factory=time.perf_counter)


class GroupCommitWriter:
    """Records events for many threads, batching whatever is waiting into one transaction."""

    def __init__(self, store: TaskStore, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.saved = 0
        # What batching costs a caller: the time from handing events over to their batch's
        # start (the transaction itself is the same with or without batching).
        self.waited = 0
        self.waited_seconds = 0.0
        self.max_wait_seconds = 0.0
        self.recent_waits: deque[float] = deque(maxlen=RECENT_WAITS)  # for percentiles
        # The part of a wait after the writer was free (the handover from the caller's thread
        # to the writer's); the rest was the transaction in flight, which a caller recording
        # on its own would have waited for too, on the log's table lock.
        self.recent_handovers: deque[float] = deque(maxlen=RECENT_WAITS)
        self.max_handover_seconds = 0.0
        self._free_since = time.perf_counter()
        self.in_flight = 0  # records in the transaction being written now

    @property
    def queued(self) -> int:
        """Records waiting for the next transaction."""
        return self._queue.qsize()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Record what is queued, then stop; later callers record directly."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)  # behind everything queued so far
        if thread is not None:
            thread.join(timeout)
            log.info("group-commit writer stopped: %s", self.summary())

    def wait_percentile(self, fraction: float) -> float:
        """That fraction's percentile of the recent records' waits for a batch, in seconds."""
        return _percentile(self.recent_waits, fraction)

    def handover_percentile(self, fraction: float) -> float:
        """The same for the waits' handover part (after the writer was free), in seconds."""
        return _percentile(self.recent_handovers, fraction)

    def summary(self) -> str:
        """What the writer did so far, for the log: batching, and what it cost callers."""
        mean = 1000 * self.waited_seconds / max(1, self.waited)
        return (
            f"{self.saved} records in {self.batches} transactions "
            f"({self.saved / max(1, self.batches):.1f} per transaction); wait for a batch: "
            f"mean {mean:.1f} ms, p99 {1000 * self.wait_percentile(0.99):.1f} ms, "
            f"longest {1000 * self.max_wait_seconds:.1f} ms; of it after the writer was free: "
            f"p99 {1000 * self.handover_percentile(0.99):.1f} ms, "
            f"longest {1000 * self.max_handover_seconds:.1f} ms"
        )

    def save(self, aggregate: Any, timeout: float = SAVE_TIMEOUT_SECONDS) -> None:
        """Record ``aggregate``'s pending events (they are gone from it, even on an error)."""
        self.record(aggregate.collect_events(), timeout)

    def record(self, events: Sequence[Any], timeout: float = SAVE_TIMEOUT_SECONDS) -> None:
        """Record ``events`` (domain events, in order); raises what recording them raised.

        Without a running writer thread they are recorded directly.
        """
        if not events:
            return
        item = _Pending(list(events))
        with self._lock:  # never queued behind stop()'s marker, where no one would take it
            queued = self._thread is not None
            if queued:
                self._queue.put(item)
        if not queued:
            self._record_alone(item)
        item.done.result(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.events)
            while size < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
                size += len(more.events)
            self.in_flight = len(batch)
            try:
                self._record_batch(batch)
            finally:
                self.in_flight = 0
                self._free_since = time.perf_counter()

    def _record_batch(self, batch: list[_Pending]) -> None:
        self._note_waits(batch)
        if len(batch) == 1:
            self._record_alone(batch[0])
            return
        try:
            self.store.save(*(event for item in batch for event in item.events))
        except IntegrityError:
            # Someone else wrote to one of these tasks: find which, alone.
            for item in batch:
                self._record_alone(item)
            return
        except Exception as error:
            for item in batch:
                item.done.set_exception(error)
            return
        self._count(len(batch))
        for item in batch:
            item.done.set_result(None)

    def _record_alone(self, item: _Pending) -> None:
        try:
            self.store.save(*item.events)
        except Exception as error:
            item.done.set_exception(error)
            return
        self._count(1)
        item.done.set_result(None)

    def _note_waits(self, batch: list[_Pending]) -> None:
        moment = time.perf_counter()
        waits = [moment - item.queued_at for item in batch]
        handovers = [moment - max(item.queued_at, self._free_since) for item in batch]
        self.waited += len(waits)
        self.waited_seconds += sum(waits)
        self.max_wait_seconds = max(self.max_wait_seconds, *waits)
        self.recent_waits.extend(waits)
        self.max_handover_seconds = max(self.max_handover_seconds, *handovers)
        self.recent_handovers.extend(handovers)

    def _count(self, saved: int) -> None:
        self.batches += 1
        self.saved += saved


def _percentile(values: deque[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
