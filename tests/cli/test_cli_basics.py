"""The console script as a user runs it: help, version, and an idempotent schema upgrade."""

from __future__ import annotations

import subprocess
import sys

from tasktrail import __version__, schema
from tasktrail.engine.database import create_sql_engine
from tasktrail.settings import Settings


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tasktrail", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "db" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


def test_db_upgrade_twice_leaves_the_database_at_the_head_revision(database_url: str) -> None:
    for _ in range(2):
        result = run("--database-url", database_url, "db", "upgrade")
        assert result.returncode == 0, result.stderr
    engine = create_sql_engine(Settings(database_url=database_url))
    try:
        with engine.connect() as connection:
            assert schema.current_revision(connection) == schema.head_revision()
    finally:
        engine.dispose()


def test_an_unsupported_database_url_is_refused_with_a_message() -> None:
    result = run("--database-url", "mysql://x/y", "db", "upgrade")
    assert result.returncode != 0
    assert "unsupported database URL" in result.stderr
    assert "Traceback" not in result.stderr
