"""Stock: an index of applied deltas by SKU and ERP time, read when a new total arrives.

A total stamped T cannot contain a delta stamped at or after T; such deltas already applied are
added back onto it (workers/stock.py), so a late total no longer wipes out a later sale.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.migrations.locks import concurrently

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CONCURRENTLY, outside the migration's transaction: a plain build would hold up every stock write
    # for as long as it reads the whole table.
    with concurrently():
        # A build cut short leaves an invalid index of this name: built again, not kept.
        op.drop_index("ix_stock_changes_applied_deltas", table_name="stock_changes", if_exists=True, postgresql_concurrently=True)
        op.create_index("ix_stock_changes_applied_deltas", "stock_changes", ["sku", "erp_timestamp"],
                        postgresql_where=sa.text("kind = 'delta' AND outcome = 'applied'"),
                        postgresql_concurrently=True)


def downgrade() -> None:
    with concurrently():
        op.drop_index("ix_stock_changes_applied_deltas", table_name="stock_changes", postgresql_concurrently=True)
