"""Release an order's holds once a stock figure stamped at or after the ERP's receipt of the order is applied.

Replaces 0002's comparison of our clock at the answer (`synced_at`) with the figure's ERP timestamp:
the ERP deducts an order before it answers and stamps its figure at the deduction, so that figure
never passed 0002's test. `orders.erp_received_at` is a lower bound of the receipt on the ERP's own
clock (workers/hold_rule.py). `release_counted_holds` is the one home of the comparison; it runs when
a figure is applied (stock_levels) and when an order is marked received (orders), so a figure that
arrived before the ERP's answer was recorded still ends the hold.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add orders.erp_received_at and move both triggers onto release_counted_holds."""
    op.add_column("orders", sa.Column("erp_received_at", sa.DateTime(timezone=True), nullable=True))
    # Orders synced before this revision keep 0002's rule: the answer's time stands in for the receipt.
    op.execute("UPDATE orders SET erp_received_at = synced_at WHERE synced_at IS NOT NULL")
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0010)
    op.execute(bodies.trigger_function("release_holds_on_erp_figure", bodies.FIGURE_RELEASES_COUNTED_0010))
    op.execute(bodies.trigger_function("release_holds_on_erp_receipt", bodies.RECEIPT_RELEASES_COUNTED_0010))
    op.execute(
        """
        CREATE TRIGGER trg_orders_release_holds
        AFTER UPDATE OF erp_received_at ON orders
        FOR EACH ROW WHEN (NEW.erp_received_at IS NOT NULL)
        EXECUTE FUNCTION release_holds_on_erp_receipt()
        """
    )


def downgrade() -> None:
    """Back to 0002's comparison with synced_at."""
    op.execute("DROP TRIGGER IF EXISTS trg_orders_release_holds ON orders")
    op.execute("DROP FUNCTION IF EXISTS release_holds_on_erp_receipt()")
    op.execute(bodies.trigger_function("release_holds_on_erp_figure", bodies.FIGURE_RELEASES_BY_SYNCED_AT_0002))
    op.execute("DROP FUNCTION IF EXISTS release_counted_holds(text, text)")
    op.drop_column("orders", "erp_received_at")
