"""An order's receipt mark and a figure of its held SKU, written at once: the second waits for the first and sees it.

The ERP stamps the figure that counts an order at its deduction, before it answers, so the figure
and the answer often reach the database together. Each transaction's trigger compared the mark
with the figure as committed when it ran, before the other had committed: neither released the
hold, which stayed until HOLD_GRACE_PERIOD_S (found by the soak benchmark). `release_counted_holds`,
called with an order, now shares the row locks of the stock rows its holds name before it releases,
so that the second waits for the first's commit (see `trigger_functions`, 0015).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """release_counted_holds shares the held SKUs' stock row locks before releasing an order's holds."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0015)


def downgrade() -> None:
    """Back to 0013's release, without the locks."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0013)
