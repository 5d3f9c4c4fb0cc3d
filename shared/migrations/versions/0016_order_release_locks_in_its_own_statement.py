"""An order's release takes 0015's share locks in its own statement: one statement planned per call, not two.

0015's lock was a statement of its own, planned at every call as the release is
(force_custom_plan): about 0.35 ms more of PostgreSQL's CPU for every pushed order. The release now
reads the figures from the stock rows it locks (see `trigger_functions`, 0016). Same holds
released, same locks, in the same order.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The lock and the release of an order's holds in one statement."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0016)


def downgrade() -> None:
    """Back to 0015's lock in a statement of its own."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0015)
