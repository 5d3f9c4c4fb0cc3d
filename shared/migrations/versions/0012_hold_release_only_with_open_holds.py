"""Look for the SKU's open holds before releasing any, as a stock figure is applied.

0010's `release_counted_holds` is a SQL function: PostgreSQL plans its join anew at every call,
and the stock_levels trigger calls it for every figure applied, about 0.1 ms a row, nine tenths of
the write of a batch of 100 stock events. Most SKUs hold nothing: an indexed look for an open hold
(`ix_stock_holds_sku_open`, its plan kept by PL/pgSQL) comes first, and the release runs, unchanged,
only where there is one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The trigger's function calls the release only for a SKU with an open hold."""
    op.execute(bodies.trigger_function("release_holds_on_erp_figure", bodies.FIGURE_RELEASES_COUNTED_IF_HELD_0012))


def downgrade() -> None:
    """Back to 0010's unconditional call."""
    op.execute(bodies.trigger_function("release_holds_on_erp_figure", bodies.FIGURE_RELEASES_COUNTED_0010))
