"""Projections: the tracking table, the task view and the strategy view.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projection_positions",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "task_view",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("strategy_id", sa.String(200), nullable=True),
        sa.Column("strategy_name", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress_current", sa.BigInteger, nullable=False),
        sa.Column("progress_total", sa.BigInteger, nullable=False),
        sa.Column("progress_percent", sa.Integer, nullable=False),
        sa.Column("progress_phase", sa.Text, nullable=False),
        sa.Column("progress_message", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.Text, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("error_type", sa.Text, nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("error_retryable", sa.Boolean, nullable=True),
        sa.Column("error_reason", sa.Text, nullable=True),
        sa.Column("result_matched", sa.BigInteger, nullable=True),
        sa.Column("result_scanned", sa.BigInteger, nullable=True),
        sa.Column("rerun_of", sa.String(36), nullable=True),
        sa.Column("submitted_by", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_task_view_submitted", "task_view", ["submitted_at", "id"])
    op.create_index("ix_task_view_status_submitted", "task_view", ["status", "submitted_at", "id"])
    op.create_index("ix_task_view_kind_submitted", "task_view", ["kind", "submitted_at", "id"])
    op.create_index(
        "ix_task_view_strategy_submitted", "task_view", ["strategy_id", "submitted_at", "id"]
    )
    op.create_table(
        "strategy_view",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_strategy_view_name", "strategy_view", ["name", "id"])


def downgrade() -> None:
    op.drop_table("strategy_view")
    op.drop_table("task_view")
    op.drop_table("projection_positions")
