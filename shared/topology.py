"""The RabbitMQ topology: the one place where exchange and queue names and arguments are spelled.

    erp.events (topic) ──catalog.update──▶ erp-sync.catalog
                       ──inventory.change─▶ erp-sync.inventory
    commerce.orders (topic) ──order.placed──▶ erp-sync.orders
    erp-sync.internal (topic) ──media.download──▶ erp-sync.media
                              ──order.push────▶ erp-sync.orders-push
        (the orders worker records an order from erp-sync.orders, then pushes it from here)

    erp-sync.retry (direct) ──<worker>.<N>ms──▶ erp-sync.<worker>.delay.<N>ms
        (TTL N ms, then dead-lettered back to erp-sync.<worker>)
    erp-sync.parking (direct) ──<worker>──▶ erp-sync.<worker>.parked

    erp-sync.retry ──orders-push.<I>ms──▶ erp-sync.orders-push.delay.<I>ms (I = ORDER_RETRY_INTERVAL_S in ms)
        the orders worker's own retry of an ERP push (spec 7.2), back to erp-sync.orders-push

Work queues are quorum queues whose own dead-letter exchange is the parking exchange, so a
message that keeps killing its consumer (redelivered without an ack) is parked by the broker
after `CRASH_DELIVERY_LIMIT` deliveries. Each work queue is bounded (`QueueBound`: messages and
bytes) with `reject-publish` overflow: past its bound the broker nacks a publish, so a worker far
behind turns into a 503 at the ingress (backpressure) instead of a memory alarm that blocks every
publisher. Queue arguments cannot change once declared (PRECONDITION_FAILED), so every value in
them is fixed here, and a new retry delay makes a new delay queue rather than a change; a new
bound means draining and deleting the work queues before `erp-sync migrate` (CHANGELOG.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

EVENTS_EXCHANGE = "erp.events"
ORDERS_EXCHANGE = "commerce.orders"
INTERNAL_EXCHANGE = "erp-sync.internal"
RETRY_EXCHANGE = "erp-sync.retry"
PARKING_EXCHANGE = "erp-sync.parking"

ORDER_PLACED = "order.placed"
ORDER_PUSH = "order.push"
CRASH_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class QueueBound:
    """How much a work queue holds before the broker refuses publishes to it."""

    max_length: int
    max_bytes: int


# Sized for one 24 GB machine: six work queues at their bound stay far below RabbitMQ's default
# memory watermark (40% of RAM); 100,000 stock events, or some 1,700 catalog events of 1,000 variants.
DEFAULT_QUEUE_BOUND = QueueBound(max_length=100_000, max_bytes=512 * 1024 * 1024)
# The widest integer a queue argument can carry: pika sends an int as AMQP's signed 64-bit long.
AMQP_LONG_MAX = 2**63 - 1
# basic.qos's prefetch_count is an unsigned 16-bit short: pika cannot send a larger one.
AMQP_SHORT_MAX = 2**16 - 1


@dataclass(frozen=True)
class WorkQueue:
    """A worker's queue and where its messages come from."""

    worker: str
    exchange: str
    routing_key: str

    @property
    def name(self) -> str:
        return f"erp-sync.{self.worker}"

    @property
    def parking_queue(self) -> str:
        return f"{self.name}.parked"

    def delay_queue(self, delay_ms: int) -> str:
        return f"{self.name}.delay.{delay_ms}ms"

    def retry_routing_key(self, delay_ms: int) -> str:
        return f"{self.worker}.{delay_ms}ms"


WORK_QUEUES: dict[str, WorkQueue] = {
    q.worker: q
    for q in (
        WorkQueue("catalog", EVENTS_EXCHANGE, "catalog.update"),
        WorkQueue("inventory", EVENTS_EXCHANGE, "inventory.change"),
        WorkQueue("media", INTERNAL_EXCHANGE, "media.download"),
        WorkQueue("orders", ORDERS_EXCHANGE, ORDER_PLACED),
        # The orders worker's second queue: recording never waits for the ERP.
        WorkQueue("orders-push", INTERNAL_EXCHANGE, ORDER_PUSH),
    )
}

ORDERS_PUSH_QUEUE = WORK_QUEUES["orders-push"]

EVENT_ROUTES: dict[str, str] = {
    q.routing_key: q.exchange for q in WORK_QUEUES.values() if q.exchange == EVENTS_EXCHANGE
}


def queue_arguments(
    role: str, queue: WorkQueue, *, delay_ms: int = 0, bound: QueueBound = DEFAULT_QUEUE_BOUND
) -> dict[str, Any]:
    """The x-arguments of a work, delay or parking queue; declared identically everywhere."""
    arguments: dict[str, Any] = {"x-queue-type": "quorum"}
    if role == "work":
        arguments |= {
            "x-max-length": bound.max_length,
            "x-max-length-bytes": bound.max_bytes,
            "x-dead-letter-exchange": PARKING_EXCHANGE,
            "x-dead-letter-routing-key": queue.worker,
            "x-delivery-limit": CRASH_DELIVERY_LIMIT,
            # Past the bound the publisher gets a nack (backpressure), never a dropped message;
            # at-least-once dead-lettering needs reject-publish too.
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    elif role == "delay":
        arguments |= {
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": queue.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    elif role != "parking":
        raise ValueError(f"unknown queue role {role!r}")
    return arguments


# No message ever goes to it: a reader of the parked messages consumes from it while it reads, so
# its consumer count says whether one does (shared/parked_reader.py), without an error to anyone.
PARKED_READERS_QUEUE = "erp-sync.dlq.readers"


class DeclaringChannel(Protocol):
    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> Any: ...
    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> Any: ...
    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> Any: ...


def order_retry_route(interval_ms: int) -> tuple[str, str]:
    """Exchange and routing key that bring an order back to the orders worker's pushes after `interval_ms`."""
    return RETRY_EXCHANGE, ORDERS_PUSH_QUEUE.retry_routing_key(interval_ms)


def declare_topology(
    channel: DeclaringChannel,
    retry_delays_ms: tuple[int, ...],
    order_retry_interval_ms: int | None = None,
    bound: QueueBound = DEFAULT_QUEUE_BOUND,
) -> None:
    """Declare every exchange, queue and binding; safe to call any number of times."""
    for exchange in (EVENTS_EXCHANGE, ORDERS_EXCHANGE, INTERNAL_EXCHANGE):
        channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    for exchange in (RETRY_EXCHANGE, PARKING_EXCHANGE):
        channel.exchange_declare(exchange=exchange, exchange_type="direct", durable=True)
    channel.queue_declare(queue=PARKED_READERS_QUEUE, durable=True, arguments={"x-queue-type": "classic"})

    for queue in WORK_QUEUES.values():
        channel.queue_declare(
            queue=queue.name,
            durable=True,
            arguments=queue_arguments("work", queue, bound=bound),
        )
        channel.queue_bind(queue=queue.name, exchange=queue.exchange, routing_key=queue.routing_key)

        channel.queue_declare(
            queue=queue.parking_queue, durable=True, arguments=queue_arguments("parking", queue)
        )
        channel.queue_bind(queue=queue.parking_queue, exchange=PARKING_EXCHANGE, routing_key=queue.worker)

        delays = set(retry_delays_ms)
        if queue is ORDERS_PUSH_QUEUE and order_retry_interval_ms is not None:
            delays.add(order_retry_interval_ms)
        for delay_ms in sorted(delays):
            channel.queue_declare(
                queue=queue.delay_queue(delay_ms),
                durable=True,
                arguments=queue_arguments("delay", queue, delay_ms=delay_ms),
            )
            channel.queue_bind(
                queue=queue.delay_queue(delay_ms),
                exchange=RETRY_EXCHANGE,
                routing_key=queue.retry_routing_key(delay_ms),
            )
