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
    """Number every order, those already there included."""
    op.add_column("orders", sa.Column("arrival", sa.BigInteger(), sa.Identity(always=True), nullable=False))


def downgrade() -> None:
    op.drop_column("orders", "arrival")
