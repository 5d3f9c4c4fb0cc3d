"""The storefront's read API: stock and products by SKU."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, overload

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import engine, look_up, read_engine
from erp_sync.ingress.availability import (
    NoSuchChange, StockView, stock_history, stock_view, stock_with_a_figure, stock_without_a_figure,
)
from erp_sync.shared.models import Media, StockChange, Variant

bp = Blueprint("read_api", __name__, url_prefix="/api/v1")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01'))}"


STOCK_FIELDS = ("sku", "erp_quantity", "reserved", "available")
MEDIA_FIELDS = ("url", "position", "is_main", "status", "failure_reason", "content_type", "byte_size", "sha256")


def stock_json(view: StockView) -> dict[str, Any]:
    return {name: getattr(view, name) for name in STOCK_FIELDS} | {
        "updated_at": view.updated_at.isoformat() if view.updated_at else None
    }


def _media_json(media: Media) -> dict[str, Any]:
    return {name: getattr(media, name) for name in MEDIA_FIELDS}


@bp.get("/inventory/<identifier:sku>")
def inventory(sku: str) -> ResponseReturnValue:
    # A plain connection for the usual read: a Session's setup and teardown were about a tenth of the API's CPU.
    with read_engine().connect() as connection:
        view = stock_with_a_figure(connection, sku)
    return jsonify(stock_json(view or look_up(stock_without_a_figure, sku, "SKU")))


@bp.get("/inventory/<identifier:sku>/history")
def inventory_history(sku: str) -> ResponseReturnValue:
    """Every stock figure received for the SKU, newest first, with what became of it.

    A SKU may hold slashes, so this path is also `/inventory/<sku>` of a SKU ending in "/history":
    the contract's stock read wins for a SKU known so; it was answered another SKU's history.
    """
    with Session(read_engine()) as session:
        whole = stock_view(session, f"{sku}/history")
        if whole is not None:
            return jsonify(stock_json(whole))
        limit, before = _query_integer("limit", "100", HISTORY_LIMIT), _query_integer("before", None, CHANGE_IDS)
        try:
            page = stock_history(session, sku, limit, before)
        except NoSuchChange:
            if not _known(session, sku):
                raise ApiError(404, f"no stock history for SKU {sku!r}") from None
            raise ApiError(400, f"before names no stock change of SKU {sku!r}; pass a next_before of its history",
                           details=[{"field": "before", "message": "no stock change of this SKU"}]) from None
        # A SKU the catalog knows has no figure yet: its stock read says 0, its history is empty.
        if before is None and not page.changes and stock_view(session, sku) is None:
            raise ApiError(404, f"no stock history for SKU {sku!r}")
    return jsonify({"sku": sku, "changes": [_change_json(c) for c in page.changes], "next_before": page.next_before})


def _known(session: Session, sku: str) -> bool:
    """Whether the SKU has a figure, or a stock read (0 for one the catalog knows without a figure)."""
    return bool(stock_history(session, sku, 1).changes) or stock_view(session, sku) is not None


HISTORY_LIMIT = range(1, 1001)
CHANGE_IDS = range(1, 2**63)  # a bigint


@overload
def _query_integer(name: str, default: str, allowed: range) -> int: ...


@overload
def _query_integer(name: str, default: None, allowed: range) -> int | None: ...


def _query_integer(name: str, default: str | None, allowed: range) -> int | None:
    """A query parameter that must be a whole number within `allowed`; None when absent without a default."""
    # Not `type=int`: werkzeug answers the default for a value that is no integer ("abc", "").
    raw = request.args.get(name, default)
    if raw is None:
        return None
    # Not past the range's digits: int() refuses 4,300 digits with a ValueError, which was a 500.
    digits = raw.lstrip("0") or "0"
    value = int(digits) if raw.isascii() and raw.isdigit() and len(digits) <= len(str(allowed[-1])) else None
    if value is None or value not in allowed:
        expected = f"{allowed[0]} to {allowed[-1]}"
        raise ApiError(400, f"{name} must be an integer from {expected}",
                       details=[{"field": name, "message": f"expected {expected}"}])
    return value


def _change_json(change: StockChange) -> dict[str, Any]:
    return {
        "event_id": change.event_id,
        "kind": change.kind,
        "quantity": change.quantity,
        "delta": change.delta,
        "resulting_quantity": change.resulting_quantity,
        "outcome": change.outcome,
        "location_id": change.location_id,
        "reason": change.reason,
        "erp_timestamp": change.erp_timestamp.isoformat(),
        "recorded_at": change.recorded_at.isoformat(),
    }


@bp.get("/products/<identifier:sku>")
def product(sku: str) -> ResponseReturnValue:
    with Session(engine()) as session:
        variant = session.scalar(
            select(Variant)
            .where(Variant.sku == sku)
            .options(selectinload(Variant.group), selectinload(Variant.media))
        )
        if variant is None:
            raise ApiError(404, f"unknown SKU {sku!r}")
        view = stock_view(session, sku)
        group = variant.group
        is_active = variant.is_active and group.is_active
        body = {
            "sku": variant.sku,
            "display_name": variant.display_name,
            "price": _money(variant.price),
            "mrp": _money(variant.mrp),
            "attributes": variant.attributes,
            "is_active": is_active,
            # A product the ERP deactivated is not for sale, whatever stock remains.
            "available": view.available if view and is_active else 0,
            "stock": stock_json(view) if view else None,
            "group": {
                "product_group_id": group.product_group_id,
                "group_name": group.group_name,
                "description": group.description,
                "category_hierarchy": list(group.category_path),
                "tax_hsn": group.tax_hsn,
                "is_active": group.is_active,
            },
            "media": [_media_json(m) for m in variant.media],
            "updated_at": variant.updated_at.isoformat(),
        }
    return jsonify(body)
