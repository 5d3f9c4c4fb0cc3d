"""Stock figures, product groups and variants keep when the door received what they were built on: `received_at`.

The ERP stamps its events in whole seconds. Two figures of one SKU or group in the same second were
settled by "the later arrival wins", and with two or more worker processes the later arrival is the
later commit: a slower worker could put the older figure back. The door now stamps each event with
its receipt time (shared/receipt_stamp.py), and a tie goes to the later-received figure
(workers/stock_rule.py, workers/catalog_writes.py).

NULL, for every row before this revision and for a sweep's correction, is "unknown": a tie with it
goes to the later arrival, as before. Nullable columns without a default: no rewrite of the tables.
During a rolling update an earlier release's worker writes a row without touching `received_at`, so
the row may keep the stamp of the update before it; a tie on that row is then settled by that stamp
until a worker of this release writes it again.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-08 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("stock_levels", "product_groups", "variants")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("received_at", sa.DateTime(timezone=True), nullable=True), if_not_exists=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "received_at")
