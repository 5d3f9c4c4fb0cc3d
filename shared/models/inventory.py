"""Stock as the ERP reports it, and the history of every figure that arrived."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, String, and_, column, or_, text
from sqlalchemy.orm import Mapped, mapped_column

from erp_sync.shared.db import Base, CreatedAt, UpdatedAt
from erp_sync.shared.models.catalog import SKU_LENGTH
from erp_sync.shared.models.states import StockChangeKind, StockChangeOutcome, one_of


class StockLevel(Base):
    """The ERP's stock figure of one SKU; no foreign key, as stock may arrive before the catalog."""

    __tablename__ = "stock_levels"

    sku: Mapped[str] = mapped_column(String(SKU_LENGTH), primary_key=True)
    # Not checked >= 0: the ERP may oversell, and we mirror its figure rather than refuse it.
    erp_quantity: Mapped[int] = mapped_column(BigInteger)
    erp_as_of: Mapped[datetime]
    # Changes stamped from erp_as_of until this may be in the figure: the span over which the sweep's
    # snapshot was read; NULL for a total, whose own second it is (workers/stock_rule.py).
    erp_unsure_before: Mapped[datetime | None]
    # When the door received the total of erp_as_of, which settles a tie of ERP timestamps
    # (shared/receipt_stamp.py); NULL where unknown: a sweep's correction, a figure of before 0024.
    received_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]


class StockChange(Base):
    """One stock figure received for a SKU and what became of it."""

    __tablename__ = "stock_changes"
    __table_args__ = (
        one_of(StockChangeKind, "kind"),
        one_of(StockChangeOutcome, "outcome"),
        CheckConstraint(
            or_(
                and_(
                    column("kind") == StockChangeKind.ABSOLUTE.value,
                    column("quantity").is_not(None),
                    column("delta").is_(None),
                ),
                and_(
                    column("kind") == StockChangeKind.DELTA.value,
                    column("delta").is_not(None),
                    column("quantity").is_(None),
                ),
            ),
            name="amount_matches_kind",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH))
    event_id: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    quantity: Mapped[int | None] = mapped_column(BigInteger)
    delta: Mapped[int | None] = mapped_column(BigInteger)
    resulting_quantity: Mapped[int | None] = mapped_column(BigInteger)
    location_id: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(255))
    erp_timestamp: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(10))
    recorded_at: Mapped[CreatedAt]


# A SKU's history is read newest first.
Index("ix_stock_changes_sku_recorded_at", StockChange.sku, StockChange.recorded_at.desc())
# A new total adds back the deltas stamped at or after it (workers/stock_rule.py): those alone, by time.
Index("ix_stock_changes_applied_deltas", StockChange.sku, StockChange.erp_timestamp,
      postgresql_where=text("kind = 'delta' AND outcome = 'applied'"))
# And the receipts held back as a figure may have held them, which a later total may count.
Index("ix_stock_changes_held_back_deltas", StockChange.sku, StockChange.erp_timestamp,
      postgresql_where=text("kind = 'delta' AND outcome = 'stale' AND delta > 0"))
