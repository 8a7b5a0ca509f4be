"""Task counts by status, kept by the task view projection, filled from the view as it is.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_status_counts",
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    # The view's rows at its stored position: from here on the projector adjusts the counts
    # in the transactions that change the rows.
    op.execute(
        "INSERT INTO task_status_counts (status, n) "
        "SELECT status, count(*) FROM task_view GROUP BY status"
    )


def downgrade() -> None:
    op.drop_table("task_status_counts")
