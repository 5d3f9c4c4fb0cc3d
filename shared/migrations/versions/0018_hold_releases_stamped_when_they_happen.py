"""A hold released by a figure is stamped when the release happens, not when its transaction began.

An order's push locks the order, calls the ERP, then records its answer in the same transaction;
the release that recording makes was stamped with now(), that transaction's start, so `orders show`
told of a release before the order's first attempt, by as long as the ERP took to answer. The
release is now stamped with clock_timestamp(), as the other releases are (see `trigger_functions`,
0018).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Releases stamped with clock_timestamp()."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0018)


def downgrade() -> None:
    """Back to 0016's now()."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0016)
