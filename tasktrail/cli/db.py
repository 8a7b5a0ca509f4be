"""``tasktrail db``: create or upgrade the database schema."""

from __future__ import annotations

import click

from tasktrail import schema


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Create the event store and bring every table to the newest revision (idempotent)."""
    from tasktrail.cli import settings_from

    settings = settings_from(ctx)
    revision = schema.upgrade(settings)
    click.echo(f"database at revision {revision}")
