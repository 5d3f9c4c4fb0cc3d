"""Idempotency: the SHA-256 of each processed event's body, so a reused event id is told from a redelivery.

The rows written before have none, and count as the same body.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: PostgreSQL changes only the catalog, without rewriting the table.
    op.add_column("processed_events", sa.Column("body_digest", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    op.drop_column("processed_events", "body_digest")
