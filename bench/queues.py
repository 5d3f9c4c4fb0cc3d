"""How many messages a queue holds, and emptying it between benchmark phases."""
from __future__ import annotations

import time

from erp_sync.shared.broker import blocking_connection


def depth(amqp_url: str, queue: str) -> int:
    connection = blocking_connection(amqp_url, "bench")
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def settled_depth(amqp_url: str, queue: str, quiet_s: float = 0.5, timeout_s: float = 15.0) -> int:
    """The depth once it stopped changing: publishes still in flight when the load stopped have landed."""
    deadline = time.monotonic() + timeout_s
    last = depth(amqp_url, queue)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        current = depth(amqp_url, queue)
        if current == last:
            return current
        last = current
    return last


def purge(amqp_url: str, queue: str) -> None:
    connection = blocking_connection(amqp_url, "bench")
    try:
        connection.channel().queue_purge(queue)
    finally:
        connection.close()
