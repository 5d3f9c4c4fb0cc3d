"""Release an order's stock holds once an ERP stock figure newer than its acknowledgement is applied.

A trigger on `stock_levels` rather than code in each writer: the webhook, catalog and nightly-sweep
paths all set `erp_as_of` when they apply an absolute figure, and none of them needs to know about
orders. A figure stamped before (or at) the ERP's acknowledgement of an order may not include it yet,
so only a strictly newer one ends the hold; a delta never moves `erp_as_of` and releases nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2024-02-01 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the release function and its trigger."""
    op.execute(bodies.trigger_function("release_holds_on_erp_figure", bodies.FIGURE_RELEASES_BY_SYNCED_AT_0002))
    op.execute(
        """
        CREATE TRIGGER trg_stock_levels_release_holds
        AFTER INSERT OR UPDATE OF erp_as_of ON stock_levels
        FOR EACH ROW EXECUTE FUNCTION release_holds_on_erp_figure()
        """
    )


def downgrade() -> None:
    """Drop the trigger and its function."""
    op.execute("DROP TRIGGER IF EXISTS trg_stock_levels_release_holds ON stock_levels")
    op.execute("DROP FUNCTION IF EXISTS release_holds_on_erp_figure()")
