"""The group-commit writer: saves the pending events of many aggregates in one transaction.

One ``save()`` through eventsourcing's recorder costs several round trips and, on PostgreSQL,
an exclusive table lock held until commit, so one transaction per event caps the engine at a
few hundred events per second. Workers hand their aggregates to this writer and wait; a
single thread takes everything waiting and records it with one ``store.save(*aggregates)``.
When that transaction fails on a conflict (IntegrityError: another process appended to one of
the tasks), the batch is saved one by one, so only the aggregate that conflicts sees the error.

eventsourcing's ``save`` takes the aggregates' pending events even when the transaction fails;
the writer keeps a copy and puts them back, so a failed batch can be retried one by one.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import IntegrityError

from tasktrail.engine.store import TaskStore

log = logging.getLogger(__name__)

MAX_BATCH = 256
SAVE_TIMEOUT_SECONDS = 60.0


@dataclass
class _Pending:
    aggregate: Any
    events: list[Any]
    done: Future[None] = field(default_factory=Future)


def _pending_events(aggregate: Any) -> list[Any]:
    return list(getattr(aggregate, "_pending_events", []))


def _restore(item: _Pending) -> None:
    """Put back the events a failed save collected (see the module docstring)."""
    aggregate_events = getattr(item.aggregate, "_pending_events", None)
    if aggregate_events is not None and not aggregate_events:
        aggregate_events.extend(item.events)


class GroupCommitWriter:
    """Saves aggregates for many threads, batching whatever is waiting into one transaction."""

    def __init__(self, store: TaskStore, *, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.saved = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def save(self, aggregate: Any, timeout: float = SAVE_TIMEOUT_SECONDS) -> None:
        """Record ``aggregate``'s pending events; raises what its save raised.

        On an error the pending events are back on the aggregate, so the caller may retry.
        Without a running writer thread the aggregate is saved directly.
        """
        item = _Pending(aggregate, _pending_events(aggregate))
        if not item.events:
            return
        if self._thread is None:
            self._save_alone(item)
        else:
            self._queue.put(item)
        item.done.result(timeout)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            self._save_batch(batch)

    def _save_batch(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            self._save_alone(batch[0])
            return
        try:
            self.store.save(*(item.aggregate for item in batch))
        except IntegrityError:
            # Someone else wrote to one of these tasks: find which, alone.
            for item in batch:
                _restore(item)
                self._save_alone(item)
            return
        except Exception as error:
            for item in batch:
                _restore(item)
                item.done.set_exception(error)
            return
        self._count(len(batch))
        for item in batch:
            item.done.set_result(None)

    def _save_alone(self, item: _Pending) -> None:
        try:
            self.store.save(item.aggregate)
        except Exception as error:
            _restore(item)
            item.done.set_exception(error)
            return
        self._count(1)
        item.done.set_result(None)

    def _count(self, saved: int) -> None:
        self.batches += 1
        self.saved += saved
