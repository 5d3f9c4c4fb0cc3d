"""The admin API: trigger ERP-side operations, read what was received and sent, switch faults."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue

from erp_sync.sandbox_erp import outbox
from erp_sync.sandbox_erp.api import json_body
from erp_sync.sandbox_erp.auth import require_bearer
from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.sandbox_erp.errors import ApiError
from erp_sync.sandbox_erp.faults import Faults
from erp_sync.sandbox_erp.ledger import Ledger
from erp_sync.sandbox_erp.payloads import Faults as FaultsBody
from erp_sync.sandbox_erp.payloads import PriceChange, StockMove, StockSet, parse

bp = Blueprint("sandbox_admin", __name__, url_prefix="/admin")


def _ledger() -> Ledger:
    ledger: Ledger = current_app.extensions["sandbox_erp.ledger"]
    return ledger


@bp.before_request
def _authenticate() -> None:
    config: SandboxConfig = current_app.extensions["sandbox_erp.config"]
    require_bearer(config.effective_admin_token)


@bp.post("/sale")
def sale() -> ResponseReturnValue:
    """An in-store (POS) sale."""
    move = parse(StockMove, json_body())
    qty = _ledger().move_stock(move.sku, -move.quantity, "POS_SALE", location_id=move.location_id)
    return jsonify({"sku": move.sku, "qty": qty})


@bp.post("/receipt")
def receipt() -> ResponseReturnValue:
    """A goods receipt."""
    move = parse(StockMove, json_body())
    qty = _ledger().move_stock(move.sku, move.quantity, "GOODS_RECEIPT", location_id=move.location_id)
    return jsonify({"sku": move.sku, "qty": qty})


@bp.post("/adjust")
def adjust() -> ResponseReturnValue:
    """A stock adjustment (a count), absolute or relative."""
    change = parse(StockSet, json_body())
    qty = _ledger().move_stock(change.sku, change.quantity_change, "STOCK_ADJUSTMENT",
                               new_quantity=change.new_quantity, location_id=change.location_id)
    return jsonify({"sku": change.sku, "qty": qty})


@bp.post("/price")
def price() -> ResponseReturnValue:
    """A price change; the whole group goes out as catalog.update."""
    change = parse(PriceChange, json_body())
    return jsonify(_ledger().change_price(change.sku, change.price, change.mrp))


@bp.post("/products")
def new_product() -> ResponseReturnValue:
    """A new product: the group in the body, or a generated one when the body is `{}`."""
    body = json_body()
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if body and not {"product_group_id", "group_name", "variants"} <= body.keys():
        raise ApiError(400, "a group needs product_group_id, group_name and variants")
    return jsonify(_ledger().add_product(body or None)), 201


@bp.post("/catalog")
def publish_catalog() -> ResponseReturnValue:
    """Send the whole catalog as catalog.update events (a shop's first load)."""
    return jsonify(_ledger().publish_catalog())


@bp.get("/stock/<sku>")
def stock(sku: str) -> ResponseReturnValue:
    """One SKU's stock."""
    qty = _ledger().stock(sku)
    if qty is None:
        raise ApiError(404, f"unknown sku {sku}")
    return jsonify({"sku": sku, "qty": qty})


@bp.get("/groups/<group_id>")
def group(group_id: str) -> ResponseReturnValue:
    """One product group as catalog.update would carry it."""
    found = _ledger().group(group_id)
    if found is None:
        raise ApiError(404, f"unknown group {group_id}")
    return jsonify(found)


@bp.get("/orders")
def orders() -> ResponseReturnValue:
    """Orders and adjustments received from the shop."""
    return jsonify(_ledger().orders())


@bp.get("/deliveries")
def deliveries() -> ResponseReturnValue:
    """Webhook deliveries, newest first, with their attempts."""
    with _ledger().store.reading() as conn:
        return jsonify(outbox.list_deliveries(conn))


@bp.get("/alerts")
def alerts() -> ResponseReturnValue:
    """Admin alerts: webhooks still failing at the 24h horizon."""
    with _ledger().store.reading() as conn:
        return jsonify(outbox.list_alerts(conn))


@bp.get("/faults")
def faults() -> ResponseReturnValue:
    """The fault state in force, and how many requests `slow` holds up now."""
    current: Faults = current_app.extensions["sandbox_erp.faults"]
    return jsonify(current.state.as_dict() | {"held": current.held})


@bp.put("/faults")
def set_faults() -> ResponseReturnValue:
    """Replace the fault state: mode none|down|5xx|slow|lost, status, retry_after_s, delay_ms, reject_skus, slow_skus."""
    body = parse(FaultsBody, json_body())
    current: Faults = current_app.extensions["sandbox_erp.faults"]
    state = current.set(body.mode, body.status, body.delay_ms, body.reject_skus, body.slow_skus, body.retry_after_s)
    return jsonify(state.as_dict())
