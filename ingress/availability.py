"""What the storefront may sell of a SKU: the ERP's figure minus what is held for orders."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from erp_sync.shared.models import StockChange, StockHold, StockLevel, Variant


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


def stock_view(session: Session, sku: str) -> StockView | None:
    """The SKU's stock, or None when neither the ERP's stock nor the catalog knows it."""
    level = session.get(StockLevel, sku)
    if level is None and session.get(Variant, sku) is None:
        return None
    reserved = session.scalar(
        select(func.coalesce(func.sum(StockHold.quantity), 0)).where(
            StockHold.sku == sku, StockHold.released_at.is_(None)
        )
    )
    return StockView(
        sku=sku,
        erp_quantity=level.erp_quantity if level else 0,
        reserved=int(reserved or 0),
        updated_at=level.updated_at if level else None,
    )


def stock_history(session: Session, sku: str, limit: int = 100) -> list[StockChange]:
    """The SKU's received figures and what became of each, newest first."""
    query = (
        select(StockChange)
        .where(StockChange.sku == sku)
        .order_by(StockChange.recorded_at.desc(), StockChange.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
