"""What workers need from the work queue; the projections side implements it.

The engine may not import the read side, so the bootstrap passes a WorkQueue in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID


class WorkQueue(Protocol):
    def claim(self, worker_id: str, kinds: Sequence[str], limit: int) -> Sequence[UUID]:
        """Up to ``limit`` waiting tasks of ``kinds``, claimed for ``worker_id`` for a lease.

        A claim only reserves a task; appending Started (optimistic concurrency) decides who
        runs it, so a double claim is harmless. On PostgreSQL claims use FOR UPDATE SKIP LOCKED.
        """
        ...  # pragma: no cover

    def release(self, task_id: UUID) -> None:
        """Give up a claim without starting (the task was cancelled meanwhile, or shut down)."""
        ...  # pragma: no cover
