"""Idempotency records keep their event's date, and are pruned by it.

A worker applies an event only while its date is within IDEMPOTENCY_WINDOW_S, so a record whose
event is dated before the window can go (workers/idempotency_window.py). By the event's own date,
the rule holds whatever WEBHOOK_MAX_FUTURE_SKEW_S was when the record was written, and whatever the
database's clock says. Records written before this revision have no date: they are pruned by when
they were written, through a partial index that later records never enter.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DATED = sa.text("dated IS NOT NULL")
UNDATED = sa.text("dated IS NULL")


def upgrade() -> None:
    """A nullable column (no rewrite); the indexes CONCURRENTLY, so that no event waits for their build."""
    op.add_column("processed_events", sa.Column("dated", sa.DateTime(timezone=True), nullable=True))
    with op.get_context().autocommit_block():
        op.create_index("ix_processed_events_dated", "processed_events", ["dated"], postgresql_where=DATED,
                        postgresql_concurrently=True)
        op.create_index("ix_processed_events_undated", "processed_events", ["processed_at"],
                        postgresql_where=UNDATED, postgresql_concurrently=True)
        op.drop_index("ix_processed_events_processed_at", table_name="processed_events", postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"],
                        postgresql_concurrently=True)
        op.drop_index("ix_processed_events_undated", table_name="processed_events", postgresql_concurrently=True)
        op.drop_index("ix_processed_events_dated", table_name="processed_events", postgresql_concurrently=True)
    op.drop_column("processed_events", "dated")
