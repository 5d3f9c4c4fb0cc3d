"""Reconciliation: a sweep past a change limit is held with its changes until approved or rejected.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reconciliation_runs"
SLOT_INDEX = "uq_reconciliation_runs_one_per_slot"


def _status_check(statuses: str, slot_statuses: str) -> None:
    op.drop_constraint(op.f("ck_reconciliation_runs_status"), TABLE, type_="check")
    op.create_check_constraint(op.f("ck_reconciliation_runs_status"), TABLE, f"status IN ({statuses})")
    op.drop_index(SLOT_INDEX, table_name=TABLE)
    op.create_index(SLOT_INDEX, TABLE, ["scheduled_for"], unique=True,
                    postgresql_where=sa.text(f"status IN ({slot_statuses})"))


def upgrade() -> None:
    """Add the held and rejected statuses, the hold's reason, and the held changes."""
    op.add_column(TABLE, sa.Column("snapshot_read_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(TABLE, sa.Column("held_reason", sa.Text(), nullable=True))
    op.add_column(TABLE, sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    # A held slot is not swept again by the schedule: it waits for a decision.
    _status_check("'running', 'succeeded', 'failed', 'skipped', 'held', 'rejected'",
                  "'running', 'succeeded', 'held'")
    op.create_table(
        "reconciliation_held_changes",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("sku", sa.String(100), nullable=False),
        sa.Column("old_qty", sa.Integer(), nullable=False),
        sa.Column("erp_qty", sa.Integer(), nullable=False),
        sa.Column("new_qty", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["reconciliation_runs.id"], ondelete="CASCADE",
                                name=op.f("fk_reconciliation_held_changes_run_id_reconciliation_runs")),
        sa.PrimaryKeyConstraint("run_id", "sku", name=op.f("pk_reconciliation_held_changes")),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_held_changes")
    op.execute("UPDATE reconciliation_runs SET status = 'failed' WHERE status IN ('held', 'rejected')")
    _status_check("'running', 'succeeded', 'failed', 'skipped'", "'running', 'succeeded'")
    op.drop_column(TABLE, "decided_at")
    op.drop_column(TABLE, "held_reason")
    op.drop_column(TABLE, "snapshot_read_until")
