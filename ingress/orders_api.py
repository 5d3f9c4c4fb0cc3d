"""The storefront's read API for orders: where an order stands with the ERP."""
from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import engine
from erp_sync.shared.order_view import order_view

bp = Blueprint("orders_api", __name__, url_prefix="/api/v1")


@bp.get("/orders/<identifier:order_id>")
def order(order_id: str) -> ResponseReturnValue:
    with Session(engine()) as session:
        body = order_view(session, order_id)
    if body is None:
        raise ApiError(404, f"unknown order {order_id!r}")
    return jsonify(body)
