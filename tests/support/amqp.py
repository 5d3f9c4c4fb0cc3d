"""Reading what landed on a queue, for assertions."""
from __future__ import annotations

from dataclasses import dataclass

import pika

from erp_sync.shared.topology import WORK_QUEUES


@dataclass(frozen=True)
class Landed:
    body: bytes
    properties: pika.BasicProperties


def drain(amqp_url: str, queue: str, limit: int = 100_000) -> list[Landed]:
    """Take (and ack) every message now on `queue`."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        landed: list[Landed] = []
        while len(landed) < limit:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            landed.append(Landed(body, properties))
        return landed
    finally:
        connection.close()


def purge_all(amqp_url: str, retry_delays_ms: tuple[int, ...]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in WORK_QUEUES.values():
            for name in (queue.name, queue.parking_queue, *map(queue.delay_queue, retry_delays_ms)):
                channel.queue_purge(name)
    finally:
        connection.close()
