"""A stock figure keeps the span of ERP time it may or may not hold: `erp_unsure_before`.

A sweep's correction is stamped when the ERP can have begun its snapshot, and a change stamped
from then until the snapshot was read in full may or may not be in it. The stock rule leaned on
`erp_as_of` alone, so a goods receipt of that span arriving after the sweep was counted on top of
a snapshot that held it already: more stock shown than the ERP had. Now the correction keeps the
span, and the rule counts such a receipt no more (workers/stock_rule.py). NULL, for every figure
before this revision and for each new total, is the total's own second.

Such a receipt is recorded stale, and a later total that cannot hold it (one stamped inside the span,
before the receipt's second) counts it: those are read through a partial index of their own.

A nullable column without a default: no rewrite of the table; the index built CONCURRENTLY, so no
event waits for it (it reads the table once). During a rolling update a total that an earlier
release's worker writes leaves a correction's span in place, earlier than the total: the rule
takes the total's own second then.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.migrations.locks import concurrently

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


HELD_BACK_INDEX = "ix_stock_changes_held_back_deltas"


def upgrade() -> None:
    op.add_column("stock_levels", sa.Column("erp_unsure_before", sa.DateTime(timezone=True), nullable=True),
                  if_not_exists=True)
    with concurrently():
        # An index build cut short leaves an invalid index: dropped and built again.
        op.drop_index(HELD_BACK_INDEX, table_name="stock_changes", if_exists=True, postgresql_concurrently=True)
        op.create_index(HELD_BACK_INDEX, "stock_changes", ["sku", "erp_timestamp"], postgresql_concurrently=True,
                        postgresql_where=sa.text("kind = 'delta' AND outcome = 'stale' AND delta > 0"))


def downgrade() -> None:
    with concurrently():
        op.drop_index(HELD_BACK_INDEX, table_name="stock_changes", if_exists=True, postgresql_concurrently=True)
    op.drop_column("stock_levels", "erp_unsure_before")
