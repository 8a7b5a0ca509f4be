"""The projector: the follower's consumer that applies every projection, exactly once.

Each batch is ONE transaction: lock the projections' position rows, apply to each projection
only the events above its stored position, move the rows, commit. A crash anywhere rolls the
whole batch back, and the stored position says exactly where to resume; a position already
applied is skipped, so several projectors (processes, or a rebuild catching up beside the
live one) can never apply an event twice.

On PostgreSQL every process runs a projector but only one is active: the one holding the
advisory lock ``PROJECTOR_LOCK_KEY`` (tasktrail/engine/locks.py). The others stand by: they
keep pace with the log without touching the database (they answer each batch's last
position, so they never hold their follower back) and try the lock about once a second, at a
batch or at the follower's idle ``tick``. The one that takes over finds the stored positions
below the batch it was handed, applies nothing, and answers the stored position, so its
follower reads again from there: nothing the dead process left unapplied is skipped. The
lock saves the standbys' work; the position rows keep exactly-once without it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from tasktrail.engine.locks import CHECK_SECONDS, PROJECTOR_LOCK_KEY, AdvisoryLock
from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.store import TaskStore
from tasktrail.projections import positions
from tasktrail.projections.base import Projection

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class Target:
    """A projection, the tables it writes, and the position row tracking them."""

    projection: Projection
    tables: Mapping[str, sa.Table]
    position_name: str

    @classmethod
    def serving(cls, projection: Projection) -> Target:
        return cls(projection, {t.name: t for t in projection.tables}, projection.name)


def apply_batch(
    connection: sa.Connection, targets: Sequence[Target], batch: Sequence[LogEvent], floor: int
) -> dict[str, int]:
    """Apply ``batch`` (the events after ``floor``) to each target, inside the caller's
    transaction; returns each target's position afterwards.

    A target stored below ``floor`` is missing events the batch does not hold (an in-place
    rebuild reset it): it is left alone, and its lower position makes the caller read again.
    """
    current = positions.lock(connection, [t.position_name for t in targets])
    moved: dict[str, int] = {}
    for target in targets:
        at = current[target.position_name]
        if at < floor:
            continue
        fresh = [event for event in batch if event.position > at]
        _apply_all(connection, target, fresh)
        if fresh:
            moved[target.position_name] = fresh[-1].position
    positions.store_all(connection, moved)
    return current | moved


def _apply_all(connection: sa.Connection, target: Target, events: Sequence[LogEvent]) -> None:
    if not events:
        return
    batched = getattr(target.projection, "apply_batch", None)
    if batched is not None:
        batched(connection, target.tables, events)
        return
    for event in events:
        target.projection.apply(connection, target.tables, event)


class Projector:
    """Applies every registered projection; a Consumer of the outbox follower."""

    name = "projections"

    def __init__(
        self,
        sql: sa.Engine,
        projections: Sequence[Projection],
        *,
        standby: bool = True,
        lock_check_seconds: float = CHECK_SECONDS,
    ) -> None:
        """With ``standby`` (the default), apply only while holding the projector lock."""
        self.sql = sql
        self.projections = list(projections)
        self.targets = [Target.serving(p) for p in self.projections]
        self.lock = (
            AdvisoryLock(sql, PROJECTOR_LOCK_KEY, "projector", check_seconds=lock_check_seconds)
            if standby
            else None
        )
        self._position: int | None = None

    @property
    def active(self) -> bool:
        """True when this projector applies events (it holds, or just took, the lock)."""
        return self.lock is None or self.lock.held()

    def tick(self) -> None:
        """Called by the follower when the log is idle: a standby tries the lock, so it takes
        over within a poll of the active process's death even if nothing is written."""
        if self.lock is not None:
            self.lock.held()

    def release(self) -> None:
        """Give up the lock (a clean stop), so a standby takes over at once."""
        if self.lock is not None:
            self.lock.release()

    def position(self) -> int:
        """The lowest stored position of the projections (rows made at 0 when missing).

        The follower asks this first, so a projector tries the lock as soon as it starts.
        """
        if self.lock is not None:
            self.lock.held()
        return self._stored_position()

    def _stored_position(self) -> int:
        with self.sql.begin() as connection:
            stored = positions.lock(connection, [t.position_name for t in self.targets])
        self._position = min(stored.values(), default=0)
        return self._position

    def handle(self, batch: Sequence[LogEvent]) -> int:
        """Apply one batch in one transaction; returns the position to continue after.

        A standby applies nothing and answers the batch's last position (see the module's
        docstring for how it catches up when it takes over).
        """
        if not self.active:
            self._position = batch[-1].position
            return self._position
        return self._apply(batch)

    def _apply(self, batch: Sequence[LogEvent]) -> int:
        floor = self._position if self._position is not None else self.position()
        with self.sql.begin() as connection:
            current = apply_batch(connection, self.targets, batch, floor)
        self._position = min(current.values(), default=batch[-1].position)
        return self._position

    def catch_up(self, store: TaskStore, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Apply everything in the log now, without a follower and whether or not this
        projector holds the lock (the position rows keep it exactly-once); returns events
        handed over. It does not try the lock either: a one-off catch-up (a test, a tool)
        that took it would keep the process's live projector standing by, and hold a
        connection, until it was released."""
        handed = 0
        after = self._stored_position()
        while True:
            batch = read_log(store, after=after, limit=batch_size)
            if not batch:
                return handed
            after = self._apply(batch)
            handed += len(batch)
