"""Reconciliation runs: schedule slot, snapshot time, newer-kept count, drift alert, skipped status.

A partial unique index on `scheduled_for` lets only one running or succeeded run exist per schedule
slot, so schedulers on several machines sweep once a night even when their clocks disagree by more
than a sweep lasts (the advisory lock alone only covers sweeps that overlap in time).

Revision ID: 0003
Revises: 0002
Create Date: 2024-02-10 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reconciliation_runs"


def upgrade() -> None:
    """Add the columns, widen the status check, index the slot."""
    op.add_column(TABLE, sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("snapshot_taken_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("snapshot_form", sa.String(length=8), nullable=True))
    op.add_column(TABLE, sa.Column("newer_kept", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column(TABLE, sa.Column("drift_alert", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column(TABLE, sa.Column("missing_skus", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.drop_constraint(op.f("ck_reconciliation_runs_status"), TABLE, type_="check")
    op.create_check_constraint(
        op.f("ck_reconciliation_runs_status"), TABLE, "status IN ('running', 'succeeded', 'failed', 'skipped')"
    )
    op.create_index(
        "uq_reconciliation_runs_one_per_slot",
        TABLE,
        ["scheduled_for"],
        unique=True,
        postgresql_where=sa.text("status IN ('running', 'succeeded')"),
    )


def downgrade() -> None:
    """Remove what upgrade() added; skipped runs go with it."""
    op.drop_index("uq_reconciliation_runs_one_per_slot", table_name=TABLE)
    op.execute("DELETE FROM reconciliation_runs WHERE status = 'skipped'")
    op.drop_constraint(op.f("ck_reconciliation_runs_status"), TABLE, type_="check")
    op.create_check_constraint(
        op.f("ck_reconciliation_runs_status"), TABLE, "status IN ('running', 'succeeded', 'failed')"
    )
    for name in ("missing_skus", "drift_alert", "newer_kept", "snapshot_form", "snapshot_taken_at", "scheduled_for"):
        op.drop_column(TABLE, name)
