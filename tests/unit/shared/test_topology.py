"""The topology as declared, read back from a channel that records: where a retried or parked message goes."""
from __future__ import annotations

from typing import Any

import pytest

from erp_sync.shared.topology import (
    CRASH_DELIVERY_LIMIT,
    PARKING_EXCHANGE,
    RETRY_EXCHANGE,
    WORK_QUEUES,
    declare_topology,
    QueueBound,
    queue_arguments,
)

DELAYS_MS = (1_000, 5_000)


class RecordingChannel:
    """Keeps what was declared and bound (a stand-in for pika's channel; no broker)."""

    def __init__(self) -> None:
        self.exchanges: dict[str, str] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: set[tuple[str, str, str]] = set()

    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> None:
        assert durable
        self.exchanges[exchange] = exchange_type

    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> None:
        assert durable
        self.queues[queue] = arguments

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.bindings.add((exchange, routing_key, queue))

    def route(self, exchange: str, routing_key: str) -> set[str]:
        return {queue for bound_exchange, key, queue in self.bindings if (bound_exchange, key) == (exchange, routing_key)}


@pytest.fixture
def channel() -> RecordingChannel:
    channel = RecordingChannel()
    declare_topology(channel, DELAYS_MS)
    return channel


@pytest.mark.parametrize("worker", sorted(WORK_QUEUES))
def test_a_crashing_message_is_parked_by_the_broker_in_its_workers_parking_queue(channel, worker):
    queue = WORK_QUEUES[worker]
    arguments = channel.queues[queue.name]

    assert arguments["x-queue-type"] == "quorum"
    assert arguments["x-delivery-limit"] == CRASH_DELIVERY_LIMIT
    assert channel.route(arguments["x-dead-letter-exchange"], arguments["x-dead-letter-routing-key"]) == {
        queue.parking_queue}


@pytest.mark.parametrize("worker", sorted(WORK_QUEUES))
@pytest.mark.parametrize("delay_ms", DELAYS_MS)
def test_a_retry_waits_its_delay_then_returns_to_its_own_work_queue(channel, worker, delay_ms):
    queue = WORK_QUEUES[worker]

    [delay_queue] = channel.route(RETRY_EXCHANGE, queue.retry_routing_key(delay_ms))
    arguments = channel.queues[delay_queue]

    assert arguments["x-message-ttl"] == delay_ms
    assert (arguments["x-dead-letter-exchange"], arguments["x-dead-letter-routing-key"]) == ("", queue.name)


def test_every_work_queue_takes_its_routing_key_and_nothing_else(channel):
    for queue in WORK_QUEUES.values():
        assert channel.route(queue.exchange, queue.routing_key) == {queue.name}
    assert channel.exchanges[RETRY_EXCHANGE] == channel.exchanges[PARKING_EXCHANGE] == "direct"


def test_dead_lettering_loses_nothing_between_two_queues():
    for role in ("work", "delay"):
        arguments = queue_arguments(role, WORK_QUEUES["inventory"], delay_ms=1_000)
        assert (arguments["x-dead-letter-strategy"], arguments["x-overflow"]) == ("at-least-once", "reject-publish")


def test_a_work_queue_is_bounded_and_refuses_publishes_past_its_bound():
    arguments = queue_arguments("work", WORK_QUEUES["catalog"], bound=QueueBound(max_length=10, max_bytes=4096))

    assert (arguments["x-max-length"], arguments["x-max-length-bytes"]) == (10, 4096)
    assert arguments["x-overflow"] == "reject-publish"


def test_an_unknown_queue_role_is_refused():
    with pytest.raises(ValueError, match="unknown queue role"):
        queue_arguments("spare", WORK_QUEUES["inventory"])
