"""A projector process for the kill -9 test: applies the log in small batches, slowly.

Run as ``python projector_process.py DATABASE_URL``; exits 0 once it has caught up. The
``Counting`` projection records one row per application, so a doubled event would show.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from projection_histories import projections

from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.log import LogEvent, read_log
from tasktrail.engine.store import TaskStore
from tasktrail.projections.projector import Projector
from tasktrail.settings import Settings


class Counting:
    """A projection that adds a row per application (never idempotent on purpose)."""

    name = "counting"
    table = sa.Table(
        "counting_test", sa.MetaData(), sa.Column("position", sa.BigInteger, nullable=False)
    )
    tables: Sequence[sa.Table] = (table,)

    def apply(
        self, connection: sa.Connection, tables: Mapping[str, sa.Table], event: LogEvent
    ) -> None:
        connection.execute(tables["counting_test"].insert().values(position=event.position))


def main(database_url: str) -> None:
    settings = Settings(database_url=database_url, seed_examples=False)
    store = TaskStore(settings)
    sql = create_sql_engine(settings)
    projector = Projector(sql, [*projections(), Counting()])
    after = projector.position()
    while batch := read_log(store, after=after, limit=5):
        after = projector.handle(batch)
        time.sleep(0.02)  # leave room for the kill to land anywhere


if __name__ == "__main__":
    main(sys.argv[1])
