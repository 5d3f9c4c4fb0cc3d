"""JSON Schemas of what the HTTP edges answer: the error shape, the probes and the read API's bodies."""
from __future__ import annotations

from typing import Any

from erp_sync.shared.models.states import MediaStatus, OrderStatus, StockChangeKind, StockChangeOutcome

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
MONEY: Schema = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$", "description": "A decimal with 2 places."}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def strict_object(properties: dict[str, Schema], description: str | None = None) -> Schema:
    """An object with exactly these properties, every one present (null where it has no value)."""
    schema: Schema = {"type": "object", "properties": properties, "required": list(properties),
                      "additionalProperties": False}
    if description:
        schema["description"] = description
    return schema


ERROR = strict_object({
    "error": {"type": "string", "description": "What went wrong, for a person."},
    "details": {"type": "array", "description": "The fields at fault (the first 20 of them), empty when none is.",
                "items": strict_object({"field": {"type": "string", "description": "A dotted path such as "
                                                  "`data.variants.0.price`, `(body)` for the whole body."},
                                        "message": STRING})},
}, "Every error answer of both edges.")

ACCEPTED = strict_object({"status": {"const": "accepted"}, "event_id": STRING},
                         "The event is stored on the broker (confirmed); the ERP must not resend it.")

HEALTH = strict_object({"status": {"const": "ok"}})

_DEPENDENCY_STATE: Schema = {"enum": ["ok", "unavailable"]}
READINESS = strict_object({
    "status": {"enum": ["ready", "unavailable"]},
    "checks": {"type": "object", "properties": {"broker": _DEPENDENCY_STATE, "database": _DEPENDENCY_STATE},
               "additionalProperties": False, "minProperties": 1,
               "description": "Which dependency is down, never where it lives: both, or those `needs` names."},
})

STOCK = strict_object({
    "sku": STRING,
    "erp_quantity": {**INTEGER, "description": "The ERP's latest figure (may be below `reserved` when it oversold)."},
    "reserved": {**INTEGER, "minimum": 0, "description": "Held for orders the ERP has not yet taken into account."},
    "available": {**INTEGER, "minimum": 0, "description": "What the storefront may sell: erp_quantity - reserved, "
                                                           "never below 0."},
    "updated_at": nullable(TIME),
})

STOCK_HISTORY = strict_object({
    "sku": STRING,
    "changes": {"type": "array", "description": "Newest first.", "items": strict_object({
        "event_id": STRING,
        "kind": {"enum": [kind.value for kind in StockChangeKind]},
        "quantity": nullable(INTEGER),
        "delta": nullable(INTEGER),
        "resulting_quantity": nullable(INTEGER),
        "outcome": {"enum": [outcome.value for outcome in StockChangeOutcome]},
        "location_id": nullable(STRING),
        "reason": nullable(STRING),
        "erp_timestamp": TIME,
        "recorded_at": TIME,
    })},
    "next_before": {**nullable(INTEGER), "description": "Pass as `before` for the older figures; null when "
                                                       "none are older."},
})

_MEDIA = strict_object({
    "url": STRING,
    "position": INTEGER,
    "is_main": BOOLEAN,
    "status": {"enum": [status.value for status in MediaStatus]},
    "failure_reason": nullable(STRING),
    "content_type": nullable(STRING),
    "byte_size": nullable(INTEGER),
    "sha256": nullable(STRING),
})

PRODUCT = strict_object({
    "sku": STRING,
    "display_name": STRING,
    "price": MONEY,
    "mrp": nullable(MONEY),
    "attributes": {"type": "object", "description": "The ERP's attributes as it sent them.",
                   "additionalProperties": {"type": ["string", "number", "boolean"]}},
    "is_active": {**BOOLEAN, "description": "False when the ERP deactivated the variant or its group."},
    "available": {**INTEGER, "minimum": 0, "description": "0 for an inactive product, whatever stock remains."},
    "stock": nullable(STOCK),
    "group": strict_object({
        "product_group_id": STRING,
        "group_name": STRING,
        "description": {**nullable(STRING), "description": (
            "The ERP's description as it sent it: raw, untrusted HTML. erp-sync stores and serves it "
            "unchanged; sanitise it (an allow-list HTML sanitiser) before display.")},
        "category_hierarchy": {"type": "array", "items": STRING},
        "tax_hsn": nullable(STRING),
        "is_active": BOOLEAN,
    }),
    "media": {"type": "array", "items": _MEDIA},
    "updated_at": TIME,
})

ORDER = strict_object({
    "order_id": STRING,
    "status": {"enum": [status.value for status in OrderStatus]},
    "attempts": {**INTEGER, "minimum": 0},
    "last_error": nullable(STRING),
    "customer_ref": STRING,
    "warehouse_id": nullable(STRING),
    "order_date": TIME,
    "created_at": TIME,
    "updated_at": TIME,
    "first_attempt_at": nullable(TIME),
    "next_attempt_at": nullable(TIME),
    "synced_at": nullable(TIME),
    "conflict_parked_at": {**nullable(TIME), "description": (
        "When a different order published under this order id was last parked, not placed (its "
        "lines, date or customer differ from this one's); null if none was. Place it again under a new id.")},
    "lines": {"type": "array", "items": strict_object({
        "line_no": INTEGER, "sku": STRING, "quantity": INTEGER, "unit_price": MONEY})},
    "holds": {"type": "array", "items": strict_object({
        "sku": STRING, "quantity": INTEGER, "release_reason": nullable(STRING),
        "held_at": TIME, "released_at": nullable(TIME)})},
})
