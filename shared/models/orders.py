"""Online orders on their way to the ERP, their lines, and the stock they hold meanwhile."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    column,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from erp_sync.shared.db import Base, CreatedAt, Money, UpdatedAt
from erp_sync.shared.models.catalog import SKU_LENGTH
from erp_sync.shared.models.states import OrderStatus, one_of


class Order(Base):
    """An order placed on the storefront and its sync state with the ERP."""

    __tablename__ = "orders"
    __table_args__ = (
        one_of(OrderStatus),
        CheckConstraint(column("attempts") >= 0, name="attempts_not_negative"),
        # The retry sweep asks "which unsynced orders are due?".
        Index(
            "ix_orders_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending_sync', 'local_only')"),
        ),
        # The probe asks "which unsettled orders has nothing touched for hours?" (stranded ones).
        Index(
            "ix_orders_unsettled_since",
            "updated_at",
            postgresql_where=text("status IN ('received', 'pending_sync')"),
        ),
    )

    order_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    # In the order erp-sync received them (a batch's orders share one created_at).
    arrival: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    order_date: Mapped[datetime]
    customer_ref: Mapped[str] = mapped_column(String(100))
    warehouse_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), server_default=OrderStatus.RECEIVED.value)
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    first_attempt_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]
    # On the ERP's clock: a stock figure stamped at or after it includes the order (workers/hold_rule.py).
    erp_received_at: Mapped[datetime | None]
    # When a different order under this id was parked, as releases before 0022 noted it; since, in
    # order_conflicts. The order's view shows the later of the two (shared/order_view.py).
    conflict_parked_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.line_no", cascade="all, delete-orphan"
    )
    holds: Mapped[list[StockHold]] = relationship(back_populates="order", cascade="all, delete-orphan")


class OrderConflict(Base):
    """When a different order published under a recorded order's id was last parked (workers/orders.py).

    Apart from the order's row, whose lock a push holds while the ERP answers: noting it must not wait
    for that. No foreign key for the same reason (its check would wait for the lock too).
    """

    __tablename__ = "order_conflicts"

    order_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    parked_at: Mapped[datetime]


class OrderLine(Base):
    """One line of an order; the SKU is not a foreign key, orders never wait for the catalog."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint(column("line_no") >= 1, name="line_no_positive"),
        CheckConstraint(column("quantity") > 0, name="quantity_positive"),
        CheckConstraint(column("unit_price") >= 0, name="unit_price_not_negative"),
    )

    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id", ondelete="CASCADE"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Money]

    order: Mapped[Order] = relationship(back_populates="lines")


class StockHold(Base):
    """Stock set aside for an order until the ERP's own figure accounts for it."""

    __tablename__ = "stock_holds"
    __table_args__ = (
        CheckConstraint(column("quantity") > 0, name="quantity_positive"),
        CheckConstraint(
            (column("released_at").is_(None)) == (column("release_reason").is_(None)),
            name="release_has_reason",
        ),
        # "available" sums only the holds still open, per SKU, on every read.
        Index("ix_stock_holds_sku_open", "sku", postgresql_where=text("released_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(SKU_LENGTH))
    quantity: Mapped[int] = mapped_column(Integer)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    released_at: Mapped[datetime | None]
    release_reason: Mapped[str | None] = mapped_column(String(50))

    order: Mapped[Order] = relationship(back_populates="holds")
