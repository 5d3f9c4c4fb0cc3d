"""The storefront's read API for orders: where an order stands with the ERP."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import engine
from erp_sync.shared.models import Order, StockHold

bp = Blueprint("orders_api", __name__, url_prefix="/api/v1")


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _hold_json(hold: StockHold) -> dict[str, Any]:
    return {"sku": hold.sku, "quantity": hold.quantity, "held_at": _time(hold.held_at),
            "released_at": _time(hold.released_at), "release_reason": hold.release_reason}


@bp.get("/orders/<identifier:order_id>")
def order(order_id: str) -> ResponseReturnValue:
    with Session(engine()) as session:
        row = session.scalar(
            select(Order).where(Order.order_id == order_id)
            .options(selectinload(Order.lines), selectinload(Order.holds))
        )
        if row is None:
            raise ApiError(404, f"unknown order {order_id!r}")
        body = {
            "order_id": row.order_id,
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "order_date": _time(row.order_date),
            "customer_ref": row.customer_ref,
            "warehouse_id": row.warehouse_id,
            "created_at": _time(row.created_at),
            "updated_at": _time(row.updated_at),
            "first_attempt_at": _time(row.first_attempt_at),
            "next_attempt_at": _time(row.next_attempt_at),
            "synced_at": _time(row.synced_at),
            "lines": [{"line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
                       "unit_price": _money(line.unit_price)} for line in row.lines],
            "holds": [_hold_json(hold) for hold in sorted(row.holds, key=lambda h: h.id)],
        }
    return jsonify(body)
