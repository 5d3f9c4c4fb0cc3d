"""The operator's records: alert mails per cause (the throttle) and webhooks answered per minute (the console).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create alert_throttle and webhook_tallies."""
    op.create_table(
        "alert_throttle",
        sa.Column("cause", sa.String(100), nullable=False),
        sa.Column("mailed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unmailed", sa.Integer(), nullable=False),
        sa.Column("latest_text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("cause", name=op.f("pk_alert_throttle")),
    )
    op.create_table(
        "webhook_tallies",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "outcome", "reason", name=op.f("pk_webhook_tallies")),
    )


def downgrade() -> None:
    op.drop_table("webhook_tallies")
    op.drop_table("alert_throttle")
