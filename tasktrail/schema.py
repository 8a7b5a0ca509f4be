"""Creating and upgrading the database: the event store's table, then Alembic's revisions.

On PostgreSQL an advisory lock makes processes that start together upgrade one at a time
(eventsourcing's CREATE TABLE IF NOT EXISTS races itself otherwise).
"""

from __future__ import annotations

import logging
import time
from importlib import resources

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tasktrail.engine.database import create_sql_engine
from tasktrail.engine.store import TaskStore
from tasktrail.settings import Settings

UPGRADE_LOCK_KEY = 0x7461736B  # "task"
# A process started before its database (a host booting, a compose file) waits this long.
STARTUP_WAIT_SECONDS = 60.0

log = logging.getLogger(__name__)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("tasktrail.migrations")))
    return config


def upgrade(settings: Settings) -> str:
    """Bring the database to the newest schema; returns the revision it is at."""
    if settings.is_sqlite:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_sql_engine(settings, pool_size=1)
    try:
        with engine.connect() as connection:
            if settings.is_postgres:
                connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": UPGRADE_LOCK_KEY})
                connection.commit()
            try:
                TaskStore(settings, create_table=True).close()
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
                return current_revision(connection) or ""
            finally:
                if settings.is_postgres:
                    connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:k)"), {"k": UPGRADE_LOCK_KEY}
                    )
                    connection.commit()
    finally:
        engine.dispose()


def upgrade_when_reachable(settings: Settings, wait_seconds: float = STARTUP_WAIT_SECONDS) -> str:
    """``upgrade``, retried with back-off while PostgreSQL cannot be reached (up to
    ``wait_seconds``); any other error, or a database still away after that, is raised."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.25
    while True:
        try:
            return upgrade(settings)
        except sa.exc.OperationalError as error:
            if not settings.is_postgres or time.monotonic() + delay > deadline:
                raise
            log.warning("database not reachable (%s); retrying in %.1fs", error.orig, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def current_revision(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
