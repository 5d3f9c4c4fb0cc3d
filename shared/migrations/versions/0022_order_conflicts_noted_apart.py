"""A different order parked under a recorded order's id is noted in a table of its own.

0019 noted it on the order's row, whose lock a push holds for as long as the ERP takes to answer:
the note waited for it, up to DATABASE_LOCK_TIMEOUT_MS and again message by message, and every
order of its batch (the recording of all orders) waited with it. A row of `order_conflicts` is
nobody else's: no foreign key, whose check would wait for the push's lock too. Notes 0019 wrote
stay on `orders.conflict_parked_at`; the order's view takes the later of the two.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_conflicts",
        sa.Column("order_id", sa.String(length=100), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_conflicts")),
    )


def downgrade() -> None:
    """The notes back on the orders' rows, where the previous release reads them."""
    op.execute("""
        UPDATE orders SET conflict_parked_at = greatest(orders.conflict_parked_at, noted.parked_at)
          FROM order_conflicts AS noted WHERE noted.order_id = orders.order_id""")
    op.drop_table("order_conflicts")
