"""How true the shop's stock is: the holds open, the oldest one's age, and the holds ended by each cause.

Read by /metrics (shared/reconcile_metrics.py) and `erp-sync reconcile --history`, from the database.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from erp_sync.shared.models import StockHold
from erp_sync.shared.row_counts import STOCK_HOLDS_RELEASED, row_counts


@dataclass(frozen=True, slots=True)
class HoldFigures:
    """Holds open now, the age of the oldest in seconds (0 without any), and ended holds per release reason."""

    open: int = 0
    oldest_open_age_s: float = 0.0
    released: dict[str, int] = field(default_factory=dict)


def hold_figures(conn: Connection, *, fold: bool = True) -> HoldFigures:
    """The figures as the database holds them now: the open holds read by their partial index, the ended ones counted.

    `fold`: fold the counts' changes on the way (shared/row_counts.py); False in a read-only transaction.
    """
    open_count, oldest = conn.execute(
        select(func.count(), func.extract("epoch", func.now() - func.min(StockHold.held_at)))
        .where(StockHold.released_at.is_(None))
    ).one()
    return HoldFigures(open=open_count, oldest_open_age_s=float(oldest or 0),
                       released=row_counts(conn, STOCK_HOLDS_RELEASED, fold=fold))
