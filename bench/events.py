"""The workers benchmark's event bodies: stock figures over a pool of SKUs, and catalog groups."""
from __future__ import annotations

from dataclasses import dataclass

from tests.support.factories import catalog_event, encode, inventory_event

VARIANTS_PER_GROUP = 5
# Discard port: a URL that is well-formed but never fetched (no media worker runs).
MEDIA_BASE = "http://127.0.0.1:9/bench"


@dataclass(frozen=True)
class StockEvent:
    """An encoded `inventory.change` and the figure it sets."""

    sku: str
    quantity: int
    body: bytes


def sku_name(index: int) -> str:
    return f"BENCH-SKU-{index:06d}"


def stock_events(count: int, skus: int, first_quantity: int = 1) -> list[StockEvent]:
    """`count` absolute figures cycling over `skus` SKUs.

    Each figure is unique and larger than every earlier one for its SKU, and the timestamps rise
    in the same order, so a SKU's figure only ever goes up as its events are applied.
    """
    events = []
    for index in range(count):
        sku, quantity = sku_name(index % skus), first_quantity + index
        body = encode(inventory_event(sku=sku, new_quantity=quantity, reason="BENCH"))
        events.append(StockEvent(sku, quantity, body))
    return events


def catalog_groups(count: int, variants_per_group: int = VARIANTS_PER_GROUP) -> list[bytes]:
    """`count` encoded `catalog.update` events, each a new group of `variants_per_group` variants."""
    bodies = []
    for group in range(count):
        group_id = f"BENCH-PG-{group:06d}"
        variants = [_variant(group_id, number) for number in range(variants_per_group)]
        bodies.append(encode(catalog_event(
            product_group_id=group_id,
            group_name=f"Bench group {group}",
            category_hierarchy=["Electronics", "Smartphones", f"Brand {group % 20}"],
            variants=variants,
        )))
    return bodies


def _variant(group_id: str, number: int) -> dict[str, object]:
    sku = f"{group_id}-V{number}"
    return {
        "sku": sku,
        "display_name": f"{sku} display name",
        "price": 799.0 + number,
        "mrp": 899.0 + number,
        "stock_quantity": 10 + number,
        "attributes": {"Color": ["Black", "Blue", "Red", "White", "Green"][number % 5], "Storage": "128GB"},
        "media": [
            {"url": f"{MEDIA_BASE}/{sku}.jpg", "is_main": True},
            {"url": f"{MEDIA_BASE}/{sku}-back.jpg", "is_main": False},
        ],
    }
