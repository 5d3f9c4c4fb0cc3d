"""Idempotency records keep their event's date, and are pruned by it.

A worker applies an event only while its date is within IDEMPOTENCY_WINDOW_S, so a record whose
event is dated before the window can go (workers/idempotency_window.py). By the event's own date,
the rule holds whatever WEBHOOK_MAX_FUTURE_SKEW_S was when the record was written, and whatever the
database's clock says. Records without a date (written before this revision, or by an earlier
release's workers during a rolling update or after a rollback) are pruned by when they were
written, through a partial index that dated records never enter.

Safe to run again after an interruption: the column is added once, and an index build cut short
(an invalid index left behind by CONCURRENTLY) is dropped and built again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.migrations.locks import concurrently

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "processed_events"
INDEXES = (("ix_processed_events_dated", "dated", sa.text("dated IS NOT NULL")),
           ("ix_processed_events_undated", "processed_at", sa.text("dated IS NULL")))
REPLACED = ("ix_processed_events_processed_at", "processed_at")


def upgrade() -> None:
    """A nullable column (no rewrite); the indexes CONCURRENTLY, so that no event waits for their build."""
    op.add_column(TABLE, sa.Column("dated", sa.DateTime(timezone=True), nullable=True), if_not_exists=True)
    with concurrently():
        for name, column, where in INDEXES:
            op.drop_index(name, table_name=TABLE, if_exists=True, postgresql_concurrently=True)
            op.create_index(name, TABLE, [column], postgresql_where=where, postgresql_concurrently=True)
        op.drop_index(REPLACED[0], table_name=TABLE, if_exists=True, postgresql_concurrently=True)


def downgrade() -> None:
    with concurrently():
        op.drop_index(REPLACED[0], table_name=TABLE, if_exists=True, postgresql_concurrently=True)
        op.create_index(REPLACED[0], TABLE, [REPLACED[1]], postgresql_concurrently=True)
        for name, _, _ in INDEXES:
            op.drop_index(name, table_name=TABLE, if_exists=True, postgresql_concurrently=True)
    op.drop_column(TABLE, "dated")
