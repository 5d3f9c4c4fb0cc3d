"""The orders benchmark's load: a catalog for the sandbox ERP, placed orders, and their publishing."""
from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import queues
from erp_sync.shared.orders import LineItem, OrderPlaced, publish_order
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.topology import WORK_QUEUES

ORDERS_QUEUE = WORK_QUEUES["orders"].name
PUSH_QUEUE = WORK_QUEUES["orders-push"].name
VARIANTS_PER_GROUP = 5
# Callers waiting on confirms at once; the publisher shares confirm round trips between them.
IN_FLIGHT = 64
# Enough threads that a slow confirm never delays the next scheduled publish at 100s a second.
PACED_THREADS = 16


def write_catalog(path: Path, skus: int, stock: int) -> list[str]:
    """A catalog file of `skus` variants holding `stock` each, as SANDBOX_ERP_CATALOG_FILE reads it; the SKUs."""
    groups: list[dict[str, Any]] = []
    for g in range(-(-skus // VARIANTS_PER_GROUP)):
        count = min(VARIANTS_PER_GROUP, skus - g * VARIANTS_PER_GROUP)
        groups.append({
            "product_group_id": f"BENCH-PG-{g:04d}", "group_name": f"Bench product {g}", "description": "",
            "category_hierarchy": ["Bench"], "tax_hsn": "00000000", "is_active": True,
            "variants": [
                {"sku": f"BENCH-{g:04d}-{v}", "display_name": f"Bench product {g} size {v}", "price": 19.99,
                 "mrp": 24.99, "stock_quantity": stock, "attributes": {"Size": str(v)}}
                for v in range(count)
            ],
        })
    path.write_text(json.dumps(groups))
    return [variant["sku"] for group in groups for variant in group["variants"]]


def make_orders(prefix: str, count: int, skus: list[str], seed: int = 0) -> list[OrderPlaced]:
    """`count` valid orders `<prefix><n>` of 1 to 3 lines over `skus`, built before any clock starts."""
    rng = random.Random(f"{prefix}{seed}")
    placed = datetime.now(UTC)
    return [
        OrderPlaced(
            order_id=f"{prefix}{n:07d}", order_date=placed, customer_ref=f"bench-{n % 500}",
            line_items=[LineItem(sku=sku, quantity=rng.randint(1, 3), unit_price=Decimal(rng.randint(100, 99_999)) / 100)
                        for sku in rng.sample(skus, rng.randint(1, 3))],
        )
        for n in range(count)
    ]


def publish_orders(amqp_url: str, orders: list[OrderPlaced]) -> None:
    """Publish every order as the storefront would, each confirmed."""
    publisher = ConfirmingPublisher(amqp_url, confirm_timeout_s=30.0)
    try:
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="prefill") as pool:
            # list(): the first failed publish raises here.
            list(pool.map(lambda order: publish_order(publisher, order), orders))
    finally:
        publisher.close()


def prefill_orders(amqp_url: str, orders: list[OrderPlaced]) -> None:
    """Publish every order as the storefront would, then check the orders queue holds exactly them."""
    publish_orders(amqp_url, orders)
    held = queues.depth(amqp_url, ORDERS_QUEUE)
    if held != len(orders):
        raise RuntimeError(f"{ORDERS_QUEUE} holds {held} messages after publishing {len(orders)} orders")


@dataclass
class Paced:
    """Wall-clock publish time of each order id, and how late each publish began against its schedule."""

    published_at: dict[str, float] = field(default_factory=dict)
    lags_s: list[float] = field(default_factory=list)
    confirms_s: list[float] = field(default_factory=list)


def publish_paced(amqp_url: str, orders: list[OrderPlaced], rate: float) -> Paced:
    """Publish the orders at `rate` a second (open loop: a slow confirm never delays the next order)."""
    paced, lock = Paced(), threading.Lock()
    publisher = ConfirmingPublisher(amqp_url, confirm_timeout_s=30.0)

    def send(order: OrderPlaced, due: float) -> None:
        # Wall clock, not monotonic: it is compared with the worker's synced_at, on the same machine.
        wall, began = time.time(), time.monotonic()
        publish_order(publisher, order)
        with lock:
            paced.published_at[order.order_id] = wall
            paced.lags_s.append(began - due)
            paced.confirms_s.append(time.monotonic() - began)

    try:
        publisher.ensure_connected()  # the connection is set up before the schedule starts
        with ThreadPoolExecutor(PACED_THREADS, thread_name_prefix="paced") as pool:
            start = time.monotonic()
            futures = []
            for n, order in enumerate(orders):
                due = start + n / rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                futures.append(pool.submit(send, order, due))
            for future in futures:
                future.result()
    finally:
        publisher.close()
    return paced
