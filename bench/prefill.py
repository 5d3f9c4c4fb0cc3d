"""Filling a work queue before its workers start: confirmed publishes straight to the exchange."""
from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from bench import queues
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import WorkQueue

# Callers waiting on confirms at once; the publisher shares confirm round trips between them.
IN_FLIGHT = 64


def prefill(amqp_url: str, queue: WorkQueue, bodies: Sequence[bytes]) -> None:
    """Publish every body as the ingress would, then check the queue holds exactly them."""
    messages = [OutgoingMessage(queue.exchange, queue.routing_key, body, message_id=json.loads(body)["event_id"])
                for body in bodies]
    publisher = ConfirmingPublisher(amqp_url, confirm_timeout_s=30.0)
    try:
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="prefill") as pool:
            # list(): the first failed publish raises here.
            list(pool.map(publisher.publish, messages))
    finally:
        publisher.close()
    held = queues.depth(amqp_url, queue.name)
    if held != len(bodies):
        raise RuntimeError(f"{queue.name} holds {held} messages after publishing {len(bodies)}")
