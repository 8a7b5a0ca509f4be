"""Migrations: `tasktrail db upgrade` from empty, again as a no-op, and equal to the tables."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner

import tasktrail.projections
from tasktrail import schema
from tasktrail.cli import cli
from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import EVENTS_TABLE
from tasktrail.projections.base import metadata
from tasktrail.settings import Settings

# Tables that are not the read side's: eventsourcing's own and Alembic's bookkeeping.
FOREIGN_TABLES = {EVENTS_TABLE, "alembic_version"}


def import_every_projection_module() -> None:
    """Every module under tasktrail.projections, so ``metadata`` holds every table."""
    for module in pkgutil.iter_modules(tasktrail.projections.__path__):
        importlib.import_module(f"tasktrail.projections.{module.name}")


def only_ours(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "table":
        return name not in FOREIGN_TABLES
    return parent_names.get("table_name") not in FOREIGN_TABLES


def differences(settings: Settings) -> list[Any]:
    import_every_projection_module()
    engine = create_sql_engine(settings, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"include_name": only_ours, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrading_an_empty_database_twice_reaches_head_and_the_second_is_a_no_op(
    database_url: str,
) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["--database-url", database_url, "db", "upgrade"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["--database-url", database_url, "db", "upgrade"])
    assert second.exit_code == 0, second.output
    head = schema.head_revision()
    assert head is not None
    assert f"revision {head}" in first.output
    assert first.output == second.output


def test_the_migrated_tables_match_the_table_definitions(settings: Settings) -> None:
    assert differences(settings) == []
    import_every_projection_module()
    engine = create_sql_engine(settings, pool_size=1)
    try:
        existing = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= existing
