"""An order's receipt mark waits for a figure of its SKUs being written at the same time, and is seen by one written later.

The ERP stamps the figure that counts an order at its deduction, before it answers, so the figure
and the answer often reach the database together. Each transaction's trigger compared the mark
with the figure as committed when it ran, before the other had committed: neither released the
hold, which stayed until HOLD_GRACE_PERIOD_S (found by the soak benchmark). The receipt trigger now
takes a share lock on the stock rows of the SKUs the order holds before its release (see
`trigger_functions.RECEIPT_RELEASES_COUNTED_AFTER_FIGURES_0015`).

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
    """The receipt trigger shares the held SKUs' row locks before it releases."""
    op.execute(bodies.trigger_function("release_holds_on_erp_receipt",
                                       bodies.RECEIPT_RELEASES_COUNTED_AFTER_FIGURES_0015))


def downgrade() -> None:
    """Back to 0010's release without the lock."""
    op.execute(bodies.trigger_function("release_holds_on_erp_receipt", bodies.RECEIPT_RELEASES_COUNTED_0010))
