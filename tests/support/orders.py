"""Orders as the storefront places them and as the read API shows them."""
from __future__ import annotations

import contextlib
import json

import pika
import pika.exceptions

from erp_sync.shared.consumer import Delivery
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
from tests.support.amqp import ORDER_RETRY_DELAYS_MS
from tests.support.waiting import wait_for

SKU = "IPH15-128-BLK"


def order(order_id: str, quantity: int = 2, sku: str = SKU, **extra) -> dict:
    return {"order_id": order_id, "order_date": "2024-01-20T10:15:00Z", "customer_ref": "CUST-555",
            "line_items": [{"sku": sku, "quantity": quantity, "unit_price": 79900.00}], **extra}


def order_body(order_id: str = "ORD-1", quantity: int = 2, sku: str = SKU, **extra) -> bytes:
    return json.dumps({"order_id": order_id, "order_date": "2024-01-20T10:15:00Z", "customer_ref": "CUST-555",
                       "line_items": [{"sku": sku, "quantity": quantity, "unit_price": 79900.00}], **extra}).encode()


def order_of_lines(lines: int, order_id: str = "ORD-1", sku: str = SKU) -> bytes:
    """An order body of `lines` lines, all of one SKU."""
    return json.dumps({"order_id": order_id, "order_date": "2024-01-20T10:15:00Z", "customer_ref": "CUST-555",
                       "line_items": [{"sku": sku, "quantity": 1, "unit_price": 10.00}] * lines}).encode()


def push_body(order_id: str = "ORD-1") -> bytes:
    """A push message's body: it names the order and nothing else."""
    return json.dumps({"order_id": order_id}).encode()


def delivery(body: bytes, *, tag: int = 1, headers: dict | None = None, redelivered: bool = False) -> Delivery:
    return Delivery(tag, body, "ORD-1", "application/json", headers or {}, redelivered)


def purge_order_delays(amqp_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for delay_ms in ORDER_RETRY_DELAYS_MS:
            channel = connection.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                channel.queue_purge(ORDERS_PUSH_QUEUE.delay_queue(delay_ms))
    finally:
        if connection.is_open:
            connection.close()


def status_of(ingress, order_id: str) -> dict | None:
    answer = ingress.get(f"/api/v1/orders/{order_id}")
    return answer.get_json() if answer.status_code == 200 else None


def wait_status(ingress, order_id: str, status: str, timeout: float = 20.0) -> dict:
    return wait_for(lambda: (s := status_of(ingress, order_id)) and s["status"] == status and s, timeout)


def available(ingress, sku: str = SKU) -> int:
    return ingress.get(f"/api/v1/inventory/{sku}").get_json()["available"]


def stock_history(ingress, sku: str = SKU) -> dict:
    """The SKU's figures as received, newest first, with each event's id, stamp and outcome."""
    return ingress.get(f"/api/v1/inventory/{sku}/history").get_json()


def stock_figures(ingress, sku: str = SKU) -> dict[str, int]:
    """The ERP's figure, what holds take off it and what is left, as the read API shows them."""
    shown = ingress.get(f"/api/v1/inventory/{sku}").get_json()
    return {name: shown[name] for name in ("erp_quantity", "reserved", "available")}
