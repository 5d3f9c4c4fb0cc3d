"""Where an order stands, as the storefront API and the operator's `erp-sync orders` show it."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from erp_sync.shared.models import Order, OrderConflict, StockHold
from erp_sync.shared.row_counts import ORDERS, row_counts

ORDER_FIELDS = ("order_id", "status", "attempts", "last_error", "customer_ref", "warehouse_id")
ORDER_TIMES = ("order_date", "created_at", "updated_at", "first_attempt_at", "next_attempt_at", "synced_at")
HOLD_TIMES = ("held_at", "released_at")
STREAMED_ROWS = 1000


def order_view(session: Session, order_id: str) -> dict[str, Any] | None:
    """The order with its lines and holds, or None when no order has that id."""
    found = session.execute(
        _with_conflicts().where(Order.order_id == order_id).options(selectinload(Order.lines), selectinload(Order.holds))
    ).first()
    if found is None:
        return None
    row, noted = found
    return _order(row, noted) | {
        "lines": [{"line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
                   "unit_price": f"{line.unit_price.quantize(Decimal('0.01'))}"} for line in row.lines],
        "holds": [_hold(hold) for hold in sorted(row.holds, key=lambda hold: hold.id)],
    }


def orders_by_status(session: Session, status: str | None, limit: int) -> Iterator[dict[str, Any]]:
    """Orders (of one status, or all), oldest first (in order of arrival: a batch shares its
    created_at), without their lines; read from the database as they are iterated, a thousand at a
    time (a listing of 200,000 needs no more memory than one of a thousand)."""
    query = _with_conflicts().order_by(Order.arrival).limit(limit).execution_options(yield_per=STREAMED_ROWS)
    if status is not None:
        query = query.where(Order.status == status)
    for row, noted in session.execute(query).tuples():
        yield _order(row, noted)


def count_orders(session: Session, status: str | None) -> int:
    """How many orders there are (of one status, or all), as kept counted (shared/row_counts.py), nothing folded."""
    counts = row_counts(session.connection(), ORDERS, fold=False)
    return counts.get(status, 0) if status is not None else sum(counts.values())


def _with_conflicts() -> Select[tuple[Order, datetime]]:
    # An outer join: the parked_at of an order without a conflict is None.
    return select(Order, OrderConflict.parked_at).outerjoin(OrderConflict, OrderConflict.order_id == Order.order_id)


def _order(row: Order, noted: datetime | None) -> dict[str, Any]:
    # Noted on the order's row by releases before migration 0022, in order_conflicts since.
    parked = [at for at in (row.conflict_parked_at, noted) if at is not None]
    return _fields(row, ORDER_FIELDS, ORDER_TIMES) | {"conflict_parked_at": _time(max(parked, default=None))}


def _hold(hold: StockHold) -> dict[str, Any]:
    return _fields(hold, ("sku", "quantity", "release_reason"), HOLD_TIMES)


def _fields(row: object, plain: tuple[str, ...], times: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(row, name) for name in plain} | {name: _time(getattr(row, name)) for name in times}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
