"""The storefront's read API for orders: where an order stands with the ERP."""
from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from erp_sync.ingress.extensions import look_up
from erp_sync.shared.order_view import order_view

bp = Blueprint("orders_api", __name__, url_prefix="/api/v1")


@bp.get("/orders/<identifier:order_id>")
def order(order_id: str) -> ResponseReturnValue:
    return jsonify(look_up(order_view, order_id, "order"))
