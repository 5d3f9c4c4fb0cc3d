"""Spec section 4: the orders the shop pushes, Option A (orders/import) and Option B (inventory/adjust)."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.http import http_date

from erp_sync.sandbox_erp.auth import require_bearer
from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.sandbox_erp.faults import sku_faults
from erp_sync.sandbox_erp.ledger import Ledger
from erp_sync.sandbox_erp.payloads import InventoryAdjust, OrderImport, parse

bp = Blueprint("sandbox_api", __name__, url_prefix="/api/v1")


@bp.before_request
def _authenticate() -> None:
    config: SandboxConfig = current_app.extensions["sandbox_erp.config"]
    require_bearer(config.api_token)


def json_body() -> Any:
    """The request body decoded with exact decimals, or a 400 saying why not."""
    try:
        return json.loads(request.get_data(), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON: {exc}") from exc


def _ledger() -> Ledger:
    ledger: Ledger = current_app.extensions["sandbox_erp.ledger"]
    return ledger


def _idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key") or None


@bp.after_request
def stamp_date(response: Response) -> Response:
    """Every answer carries the ERP's clock in `Date` (RFC 9110 asks it of an origin with a clock)."""
    response.headers["Date"] = http_date()
    return response


@bp.post("/orders/import")
def import_order() -> ResponseReturnValue:
    """Take a full order and deduct its lines."""
    order = parse(OrderImport, json_body())
    sku_faults([line.sku for line in order.line_items])
    return jsonify(_ledger().take_order(order, _idempotency_key())), 201


@bp.post("/inventory/adjust")
def adjust_inventory() -> ResponseReturnValue:
    """Apply a stock deduction (or return) for a reference."""
    adjust = parse(InventoryAdjust, json_body())
    sku_faults([item.sku for item in adjust.adjustments])
    return jsonify(_ledger().take_adjustment(adjust, _idempotency_key())), 201
