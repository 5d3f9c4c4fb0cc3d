"""The ERP's webhook events (spec 3): building, encoding and signing them."""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from erp_sync.sandbox_erp.catalog import Group

Event = dict[str, Any]


def utc_now(precision: str = "s") -> str:
    """The current time as the spec writes it: UTC, a trailing Z, whole seconds or ("ms") milliseconds."""
    now = datetime.now(timezone.utc)
    if precision == "ms":
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _envelope(event_type: str, data: dict[str, Any], precision: str = "s") -> Event:
    return {"event_id": f"evt_{uuid.uuid4()}", "event_type": event_type, "timestamp": utc_now(precision),
            "data": data}


def inventory_change(sku: str, new_quantity: int, reason: str, location_id: str | None = "WH-MAIN",
                     precision: str = "s", reference_id: str | None = None) -> Event:
    """An `inventory.change` with the absolute figure (spec 3.2 prefers it: it repairs drift).

    `reference_id` names the order the change deducts (an optional extension, docs/erp-teams.md).
    """
    data: dict[str, Any] = {"sku": sku, "new_quantity": new_quantity, "reason": reason}
    if location_id:
        data["location_id"] = location_id
    if reference_id:
        data["reference_id"] = reference_id
    return _envelope("inventory.change", data, precision)


def catalog_update(group: Group) -> Event:
    """A `catalog.update` carrying the full group object (spec 3.1 discourages partial updates)."""
    return _envelope("catalog.update", group)


def encode(event: Event) -> bytes:
    """The exact bytes sent, and signed."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, body: bytes) -> str:
    """`X-ERP-Signature`: lowercase hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
