"""The ``tasktrail`` command: serve, worker, replay, audit, projections, db, cleanup.

Every flag falls back to a ``TASKTRAIL_*`` environment variable (see ``tasktrail.settings``).
Each command group lives in its own module here and is registered below.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from tasktrail import __version__
from tasktrail.cli.cleanup import cleanup
from tasktrail.cli.db import db
from tasktrail.cli.projections import projections
from tasktrail.cli.replay import audit_group, replay
from tasktrail.cli.serve import serve
from tasktrail.cli.worker import worker
from tasktrail.errors import TasktrailError
from tasktrail.settings import Settings


class CommandError(click.ClickException):
    """A TasktrailError shown to the user as one line, exit status 2, no traceback."""

    exit_code = 2


class TasktrailGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TasktrailError as error:
            raise CommandError(str(error)) from None


@click.group(cls=TasktrailGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tasktrail")
@click.option(
    "--database-url",
    default=None,
    help="sqlite:///PATH (the default, ./tasktrail.db) or postgresql://USER@HOST:PORT/DB. "
    "Env: TASKTRAIL_DATABASE_URL.",
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None) -> None:
    """tasktrail: an event-sourced task engine for long-running strategy executions."""
    ctx.obj = {"database_url": database_url}


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings from the environment, the group's --database-url and a command's own flags."""
    root = ctx.find_root().obj or {}
    overrides.setdefault("database_url", root.get("database_url"))
    return Settings.from_env(os.environ, **overrides)


def configure_logging(settings: Settings) -> None:
    """The long-running commands' log: ``settings.log_level`` and up, to stderr."""
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s %(message)s"
    )


cli.add_command(db)
cli.add_command(serve)
cli.add_command(projections)
cli.add_command(worker)
cli.add_command(replay)
cli.add_command(audit_group)
cli.add_command(cleanup)


def main() -> None:
    cli()
