"""What the storefront may sell of a SKU: the ERP's figure minus what is held for orders."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import ScalarSelect

from erp_sync.shared.db import SessionOrConnection, driver_execute
from erp_sync.shared.models import StockChange, StockHold, Variant


@dataclass(frozen=True)
class StockView:
    sku: str
    erp_quantity: int
    reserved: int
    updated_at: datetime | None

    @property
    def available(self) -> int:
        # An oversold ERP figure (below what is held) means nothing is left to sell, not "minus".
        return max(self.erp_quantity - self.reserved, 0)


# The storefront's usual read, a SKU with a figure, in one round trip. Plain SQL, run through the
# driver: the same select built per call and run through the ORM was over half of the read API's
# Python time for a GET /api/v1/inventory/<sku>, and SQLAlchemy's execution context a fifth.
# Also run on the API's event loop (ingress/stock_desk.py), on an async connection.
STOCK_WITH_A_FIGURE = """
SELECT level.erp_quantity, level.updated_at,
       (SELECT coalesce(sum(hold.quantity), 0) FROM stock_holds AS hold
        WHERE hold.sku = level.sku AND hold.released_at IS NULL) AS reserved
FROM stock_levels AS level WHERE level.sku = %(sku)s
"""


def stock_with_a_figure(reader: SessionOrConnection, sku: str) -> StockView | None:
    """The SKU's stock if the ERP has sent a figure for it, else None: the storefront's usual read."""
    return stock_of(sku, driver_execute(reader, STOCK_WITH_A_FIGURE, {"sku": sku}))


def stock_of(sku: str, rows: Sequence[tuple[Any, ...]]) -> StockView | None:
    """The StockView that STOCK_WITH_A_FIGURE's rows give, None for no row."""
    if not rows:
        return None
    erp_quantity, updated_at, reserved = rows[0]
    return StockView(sku=sku, erp_quantity=erp_quantity, reserved=int(reserved), updated_at=updated_at)


def stock_view(session: Session, sku: str) -> StockView | None:
    """The SKU's stock, or None when neither the ERP's stock nor the catalog knows it."""
    return stock_with_a_figure(session, sku) or stock_without_a_figure(session, sku)


def stock_without_a_figure(session: Session, sku: str) -> StockView | None:
    """The stock of a SKU the ERP has sent no figure for: 0 if the catalog knows it, else None."""
    if session.get(Variant, sku) is None:
        return None
    return StockView(sku=sku, erp_quantity=0, reserved=int(session.scalar(select(_reserved(sku))) or 0),
                     updated_at=None)


def _reserved(sku: str) -> ScalarSelect[int]:
    return select(func.coalesce(func.sum(StockHold.quantity), 0)).where(
        StockHold.sku == sku, StockHold.released_at.is_(None)
    ).scalar_subquery()


@dataclass(frozen=True)
class HistoryPage:
    """Up to a limit of a SKU's figures, newest first, and the change to read on before, if any are older."""

    changes: list[StockChange]
    next_before: int | None


class NoSuchChange(LookupError):
    """A page was asked for before a change that is not the SKU's."""


def stock_history(session: Session, sku: str, limit: int = 100, before: int | None = None) -> HistoryPage:
    """The SKU's received figures and what became of each, newest first: the newest `limit`, or those
    recorded before the change `before` (a `next_before` of an earlier page).

    Raises:
        NoSuchChange: `before` names no change of the SKU.
    """
    query = select(StockChange).where(StockChange.sku == sku)
    if before is not None:
        cursor = session.execute(select(StockChange.recorded_at, StockChange.id)
                                 .where(StockChange.id == before, StockChange.sku == sku)).one_or_none()
        if cursor is None:
            raise NoSuchChange(before)
        query = query.where(tuple_(StockChange.recorded_at, StockChange.id) < tuple_(*cursor))
    # One more than asked: whether a next page has anything.
    changes = list(session.scalars(query.order_by(StockChange.recorded_at.desc(), StockChange.id.desc())
                                   .limit(limit + 1)))
    return HistoryPage(changes[:limit], changes[limit - 1].id if len(changes) > limit else None)
