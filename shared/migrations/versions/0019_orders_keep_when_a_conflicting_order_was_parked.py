"""An order keeps when a different order under its id was last parked, for the storefront to see.

A different order published under a recorded order id is parked (`order_id_conflict`): pushing it
would lose one of the two. The storefront that published it heard nothing of it: `GET
/api/v1/orders/<id>` showed the recorded order alone, as if its own had been taken.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """A nullable column: no rewrite of the table, no default to fill in."""
    op.add_column("orders", sa.Column("conflict_parked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "conflict_parked_at")
