"""Stock figures in 64 bits: quantities are bounded at the door, the figures they add up to are not.

Three receipts of 1,000,000,000 units for one SKU were each accepted (202), and the third was
parked ("integer out of range"); a catalog update whose total, with the receipts since, passed
2,147,483,647 parked its whole group, product data included. Every column that holds a SKU's
figure, or a difference between two, is now a bigint.

Each table is changed in one ALTER TABLE, so PostgreSQL rewrites it once, under an ACCESS EXCLUSIVE
lock: stock events, reads of a SKU's history and reconciliation runs wait for it. The upgrade note
in CHANGELOG.md gives the time per million history rows.

Downgrading fails while any figure is past 32 bits: lower it first, or leave the schema at 0017.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURE_COLUMNS = {
    "stock_levels": ("erp_quantity",),
    "stock_changes": ("quantity", "delta", "resulting_quantity"),
    "reconciliation_corrections": ("old_qty", "new_qty"),
    "reconciliation_held_changes": ("old_qty", "erp_qty", "new_qty"),
}


def _retype(sql_type: str) -> None:
    # One statement a table (not op.alter_column's one a column): one rewrite of each table.
    for table, columns in FIGURE_COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {sql_type}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    _retype("bigint")


def downgrade() -> None:
    _retype("integer")
