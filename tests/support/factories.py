"""Valid ERP events (the spec's examples, dated now) to build test bodies from."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from erp_sync.ingress.signature import sign


def now_iso(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat().replace("+00:00", "Z")


def catalog_event(**data_overrides: Any) -> dict[str, Any]:
    """Spec 3.1's example, made valid JSON and dated now."""
    event: dict[str, Any] = {
        "event_id": f"evt_{uuid.uuid4()}",
        "event_type": "catalog.update",
        "timestamp": now_iso(),
        "data": {
            "product_group_id": "PG-1001",
            "group_name": "iPhone 15",
            "description": "<p>Full HTML...</p>",
            "category_hierarchy": ["Electronics", "Smartphones", "Apple"],
            "tax_hsn": "85171300",
            "is_active": True,
            "variants": [
                {
                    "sku": "IPH15-128-BLK",
                    "display_name": "iPhone 15 128GB Black",
                    "price": 79900.00,
                    "mrp": 89900.00,
                    "stock_quantity": 50,
                    "attributes": {"Color": "Black", "Storage": "128GB"},
                    "media": [
                        {"url": "https://erp-cdn.com/u/iph15-blk.jpg", "is_main": True},
                        {"url": "https://erp-cdn.com/u/iph15-blk-back.jpg", "is_main": False},
                    ],
                },
                {
                    "sku": "IPH15-128-BLU",
                    "display_name": "iPhone 15 128GB Blue",
                    "price": 79900.00,
                    "stock_quantity": 42,
                    "attributes": {"Color": "Blue", "Storage": "128GB"},
                    "media": [{"url": "https://erp-cdn.com/u/iph15-blu.jpg", "is_main": True}],
                },
            ],
        },
    }
    event["data"].update(data_overrides)
    return event


def inventory_event(**data_overrides: Any) -> dict[str, Any]:
    """Spec 3.2's example, dated now."""
    event: dict[str, Any] = {
        "event_id": f"evt_{uuid.uuid4()}",
        "event_type": "inventory.change",
        "timestamp": now_iso(),
        "data": {"sku": "IPH15-128-BLK", "location_id": "WH-MAIN", "new_quantity": 49, "reason": "POS_SALE"},
    }
    event["data"].update(data_overrides)
    return event


def variant_with(**overrides: Any) -> dict[str, Any]:
    variant = copy.deepcopy(catalog_event()["data"]["variants"][0])
    variant.update(overrides)
    return variant


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def signed_headers(body: bytes, secret: str, content_type: str = "application/json") -> dict[str, str]:
    return {"X-ERP-Signature": sign(secret.encode(), body), "Content-Type": content_type}
