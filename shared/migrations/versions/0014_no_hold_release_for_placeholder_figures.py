"""The stock_levels trigger fires only for a figure the ERP gave: not for a row that holds none yet.

A SKU's first event (and a catalog group's every new SKU) inserts its row with no total yet
(`erp_as_of` = 1970-01-01, workers/stock_rule.py `NO_TOTAL_YET`) to lock it, then writes its
figure: the trigger fired twice for each new SKU, the first time for a row that can end no hold
(a hold ends at a figure stamped at or after the ERP's receipt of its order). A `WHEN` clause
skips that first call without entering PL/pgSQL at all.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_TOTAL_YET = "1970-01-01 00:00:00+00"  # workers/stock_rule.py's, which this layer cannot import
_CREATE = """
CREATE TRIGGER trg_stock_levels_release_holds
AFTER INSERT OR UPDATE OF erp_as_of ON stock_levels
FOR EACH ROW {when}EXECUTE FUNCTION release_holds_on_erp_figure()
"""


def upgrade() -> None:
    """Re-create the trigger with its WHEN clause."""
    op.execute("DROP TRIGGER trg_stock_levels_release_holds ON stock_levels")
    op.execute(_CREATE.format(when=f"WHEN (NEW.erp_as_of > TIMESTAMPTZ '{NO_TOTAL_YET}') "))


def downgrade() -> None:
    """Back to firing for every row (migration 0002)."""
    op.execute("DROP TRIGGER trg_stock_levels_release_holds ON stock_levels")
    op.execute(_CREATE.format(when=""))
