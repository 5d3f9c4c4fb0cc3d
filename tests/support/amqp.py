"""Reading what landed on a queue, for assertions."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import pika
import pika.exceptions

from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WORK_QUEUES

# The ORDER_RETRY_INTERVAL_S of the tests' orders workers, in ms (tests/e2e/conftest.py order_settings).
ORDER_RETRY_DELAYS_MS = (1000,)


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


def purge_all(amqp_url: str, retry_delays_ms: tuple[int, ...], settle_s: float = 30.0) -> None:
    """Empty every queue of the topology once no consumer is left on any of them.

    A consumer closed by an earlier test hands its unacked messages back to a quorum queue only when
    the queue has processed its going away, which may be after a purge sent meanwhile: such a message
    would reach the next test. The consumer count drops in the same step, so waiting for it is enough.
    """
    # Delay queues first: one expiring meanwhile dead-letters into its work queue, purged after it.
    names = [name for queue in WORK_QUEUES.values()
             for name in (*map(queue.delay_queue, retry_delays_ms), queue.name, queue.parking_queue)]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        deadline = time.monotonic() + settle_s
        while consumed := {name: count for name in names
                           if (count := channel.queue_declare(name, passive=True).method.consumer_count)}:
            if time.monotonic() > deadline:
                raise AssertionError(f"consumers still on queues {settle_s:.0f} s after their test: {consumed}")
            time.sleep(0.05)
        # The orders' own retry delay (ORDER_RETRY_INTERVAL_S, 1 s in the e2e tests) first: a push an
        # earlier test's worker left waiting there reached the next test's push queue after its purge.
        for delay_ms in ORDER_RETRY_DELAYS_MS:
            order_delays = connection.channel()
            with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):  # not declared in this run
                order_delays.queue_purge(ORDERS_PUSH_QUEUE.delay_queue(delay_ms))
        for name in names:
            channel.queue_purge(name)
    finally:
        connection.close()


def returned(amqp_url: str, queue: str, times: int, timeout_s: float = 10.0) -> Landed:
    """The first message on `queue`, taken and handed back without an ack `times` times (its
    connection closed, as a worker's dies): the broker's count of its returns, as a crash leaves it."""
    deadline = time.monotonic() + timeout_s
    taken: Landed | None = None
    for _ in range(times):
        taken = None
        while taken is None:
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            try:
                method, properties, body = connection.channel().basic_get(queue, auto_ack=False)
                if method is not None:
                    taken = Landed(body, properties)
            finally:
                connection.close()
            if taken is None:  # the queue has not yet had back what the last connection held
                assert time.monotonic() < deadline, f"nothing came back on {queue} in {timeout_s:.0f} s"
                time.sleep(0.05)
    assert taken is not None
    return taken
