"""The starts of a suspect message that have not ended, so that one that kills its worker is parked alone.

A message back twice without an ack is handled alone, each start counted here and forgotten once it
ends (workers/crash_guard.py). Before, RabbitMQ's delivery limit parked it together with every
message its worker had prefetched. A table nobody else writes; a rolling update's earlier workers
neither read nor write it.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08 01:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unfinished_attempts",
        sa.Column("queue", sa.String(length=100), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("queue", "message_key", name=op.f("pk_unfinished_attempts")),
    )


def downgrade() -> None:
    op.drop_table("unfinished_attempts")
