"""Parked messages for tests: one parked by hand (as a worker would have), or one no worker can read."""
from __future__ import annotations

import pika

from erp_sync.shared.retry_policy import ATTEMPT_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER
from erp_sync.shared.topology import EVENTS_EXCHANGE, PARKING_EXCHANGE


def park(amqp_url: str, worker: str, message_id: str, reason: str = "ValueError: bad", attempts: int = 3,
         body: bytes | None = None, extra_headers: dict[str, object] | None = None) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        headers = {PARK_REASON_HEADER: reason, ATTEMPT_HEADER: attempts, PARKED_AT_HEADER: "2026-12-04T03:00:00+00:00",
                   "x-keep": "kept"} | (extra_headers or {})
        payload = body if body is not None else f'{{"id": "{message_id}"}}'.encode()
        # Confirmed: a quorum queue holds the message only once the broker confirms it, and a read
        # on another connection right after an unconfirmed publish can find the queue still empty.
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(PARKING_EXCHANGE, worker, payload,
                              pika.BasicProperties(message_id=message_id, headers=headers,
                                                   content_type="application/json", delivery_mode=2))
    finally:
        connection.close()


def publish_unreadable(amqp_url: str, message_id: str) -> None:
    """An inventory event no worker can read, published as the door would: the inventory worker parks it."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(EVENTS_EXCHANGE, "inventory.change", b"{not json", pika.BasicProperties(
            message_id=message_id, content_type="application/json", delivery_mode=2), mandatory=True)
    finally:
        connection.close()
