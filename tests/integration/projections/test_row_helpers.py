"""Many rows in one statement (projections.base.insert_rows / update_rows): on PostgreSQL
the rows travel as one JSON document unpacked into typed columns; what comes back must be
exactly what went in, for every column type the projections use and for awkward text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tasktrail.projections.base import insert_rows, update_rows

scratch = sa.MetaData()
rows_table = sa.Table(
    "row_helpers_scratch",
    scratch,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("label", sa.Text, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("small", sa.Integer, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=True),
)

AWKWARD = [
    "plain",
    'quote \' and "double"',
    "back\\slash",
    "new\nline\ttab",
    "ünïcødé ✓ 𝄞",
    "{}[],:",
]
BASE = datetime(2026, 12, 4, 19, 30, 1, 123456, tzinfo=UTC)


@pytest.fixture
def table(sql: sa.Engine) -> Iterator[sa.Table]:
    scratch.create_all(sql)
    yield rows_table
    scratch.drop_all(sql)


def stored(sql: sa.Engine) -> dict[str, dict[str, object]]:
    with sql.connect() as connection:
        rows = connection.execute(sa.select(rows_table)).mappings()
        return {row["id"]: {**row, "at": aware(row["at"])} for row in rows}


def aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def test_inserted_and_updated_rows_read_back_exactly(sql: sa.Engine, table: sa.Table) -> None:
    given: list[dict[str, Any]] = [
        {
            "id": f"row-{n}",
            "label": label,
            "count": 2**40 + n,
            "small": None if n % 2 else n,
            "flag": [True, False, None][n % 3],
            "at": None if n == 3 else BASE + timedelta(seconds=n),
        }
        for n, label in enumerate(AWKWARD)
    ]
    with sql.begin() as connection:
        insert_rows(connection, table, given)
    assert stored(sql) == {row["id"]: row for row in given}

    changes: list[dict[str, Any]] = [
        {"id": "row-1", "label": None, "flag": True, "at": BASE - timedelta(days=400)},
        {"id": "row-4", "label": "é\u2028", "flag": None, "at": None},
        {"id": "missing", "label": "no such row", "flag": False, "at": BASE},
    ]
    with sql.begin() as connection:
        update_rows(connection, table, "id", changes)
        update_rows(connection, table, "id", [{"id": "row-0", "count": -5}])

    expected = {row["id"]: dict(row) for row in given}
    for change in changes[:2]:
        expected[str(change["id"])].update(change)
    expected["row-0"]["count"] = -5
    assert stored(sql) == expected


def test_no_rows_write_nothing(sql: sa.Engine, table: sa.Table) -> None:
    with sql.begin() as connection:
        insert_rows(connection, table, [])
        update_rows(connection, table, "id", [])
    assert stored(sql) == {}
