"""Orders: the sequence in which erp-sync received them.

Orders recorded in one batch share a transaction and so a `created_at`; the ERP probe re-sends
local_only orders oldest first, which needs the order of arrival itself.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Number the orders already there by when they were recorded, then every new one as it comes."""
    op.add_column("orders", sa.Column("arrival", sa.BigInteger(), nullable=True))
    op.execute("""
        UPDATE orders SET arrival = numbered.arrival
          FROM (SELECT order_id, row_number() OVER (ORDER BY created_at, order_id) AS arrival FROM orders) AS numbered
         WHERE orders.order_id = numbered.order_id""")
    op.alter_column("orders", "arrival", nullable=False)
    op.execute("ALTER TABLE orders ALTER COLUMN arrival ADD GENERATED ALWAYS AS IDENTITY")
    op.execute("SELECT setval(pg_get_serial_sequence('orders', 'arrival'), (SELECT coalesce(max(arrival), 0) + 1 FROM orders), false)")


def downgrade() -> None:
    op.drop_column("orders", "arrival")
