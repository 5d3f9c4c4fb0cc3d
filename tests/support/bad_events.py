"""ERP events that must be refused, each with the fields a refusal names (the webhook contract's table)."""
from __future__ import annotations

from datetime import timedelta

from tests.support.factories import catalog_event, encode, inventory_event, now_iso, variant_with


def _catalog_variant(**overrides):
    return catalog_event(variants=[variant_with(**overrides)])


BAD_EVENTS = [
    ("invalid-json", b'{"event_id": "evt_1", ', ["(body)"]),
    ("array", b"[1, 2]", ["(body)"]),
    ("unknown-event-type", encode({**inventory_event(), "event_type": "stock.teleported"}), ["event_type"]),
    ("missing-event-id", encode({k: v for k, v in inventory_event().items() if k != "event_id"}), ["event_id"]),
    ("naive-timestamp", encode({**inventory_event(), "timestamp": "2024-01-20T10:05:00"}), ["timestamp"]),
    ("too-old", encode({**inventory_event(), "timestamp": now_iso(-timedelta(hours=49))}), ["timestamp"]),
    ("from-the-future", encode({**inventory_event(), "timestamp": now_iso(timedelta(hours=1))}), ["timestamp"]),
    ("missing-sku", encode(inventory_event(sku=None)), ["data.sku"]),
    ("blank-sku", encode(inventory_event(sku="  ")), ["data.sku"]),
    ("absolute-and-delta", encode(inventory_event(quantity_change=-1)), ["data"]),
    ("neither-absolute-nor-delta", encode(inventory_event(new_quantity=None)), ["data"]),
    ("quantity-as-string", encode(inventory_event(new_quantity="49")), ["data.new_quantity"]),
    ("fractional-quantity", encode(inventory_event(new_quantity=49.5)), ["data.new_quantity"]),
    ("negative-stock", encode(inventory_event(new_quantity=-3)), ["data.new_quantity"]),
    ("long-group-id", encode(catalog_event(product_group_id="P" * 51)), ["data.product_group_id"]),
    ("no-variants", encode(catalog_event(variants=[])), ["data.variants"]),
    ("price-3-places", encode(_catalog_variant(price=10.125)), ["data.variants.0.price"]),
    ("price-as-bool", encode(_catalog_variant(price=True)), ["data.variants.0.price"]),
    ("negative-mrp", encode(_catalog_variant(mrp=-1)), ["data.variants.0.mrp"]),
    ("no-media", encode(_catalog_variant(media=[])), ["data.variants.0.media"]),
    ("ftp-media", encode(_catalog_variant(media=[{"url": "ftp://erp/x.jpg"}])), ["data.variants.0.media.0.url"]),
    ("duplicate-sku", encode(catalog_event(variants=[variant_with(), variant_with()])), ["data.variants"]),
    (
        "several-bad-fields",
        encode(catalog_event(group_name="", variants=[variant_with(price="cheap", stock_quantity=1.5)])),
        ["data.group_name", "data.variants.0.price", "data.variants.0.stock_quantity"],
    ),
]

# Refused by the ingress's window on timestamps (shared.erp_events.event_age_problem), not by the decoder.
OUT_OF_WINDOW = {"too-old", "from-the-future"}
