"""Release counted holds through an index: `release_counted_holds` in PL/pgSQL, planned for each call's key.

0010's SQL function is planned with its parameters unknown, so its `(p IS NULL OR h.key = p)`
tests cannot use an index: every call scanned every hold. Called by the orders trigger for each
order the ERP acknowledged, it cost 4-5 ms of the database's CPU an order with 16,000 holds, more
than the orders worker's own CPU. The statement is unchanged; planned at each call with its key
(force_custom_plan) it goes through that key's index, 0.3 ms a call with the same holds. A cached
generic plan would be cheaper while it is good, but one made while the tables were small scanned
every open hold (5.7 ms a call in bench.orders).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from erp_sync.shared.migrations import trigger_functions as bodies

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Replace release_counted_holds with its PL/pgSQL form."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0013)


def downgrade() -> None:
    """Back to 0010's SQL function."""
    op.execute(bodies.RELEASE_COUNTED_HOLDS_0010)
