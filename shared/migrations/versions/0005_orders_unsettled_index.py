"""Orders: an index for the probe's search for stranded orders (unsettled and untouched for long).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.migrations.locks import concurrently

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY, outside the migration's transaction: a plain build would hold up order recording
    # for as long as it reads the whole table.
    with concurrently():
        # A build cut short leaves an invalid index of this name: built again, not kept.
        op.drop_index("ix_orders_unsettled_since", table_name="orders", if_exists=True, postgresql_concurrently=True)
        op.create_index("ix_orders_unsettled_since", "orders", ["updated_at"],
                        postgresql_where=sa.text("status IN ('received', 'pending_sync')"),
                        postgresql_concurrently=True)


def downgrade() -> None:
    with concurrently():
        op.drop_index("ix_orders_unsettled_since", table_name="orders", postgresql_concurrently=True)
