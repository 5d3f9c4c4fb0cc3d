"""Reading what landed on a queue, for assertions."""
from __future__ import annotations

from dataclasses import dataclass

import pika

from shared.topology import WORK_QUEUES


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


def purge_all(amqp_url: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in WORK_QUEUES.values():
            channel.queue_purge(queue.name)
            channel.queue_purge(queue.parking_queue)
    finally:
        connection.close()
