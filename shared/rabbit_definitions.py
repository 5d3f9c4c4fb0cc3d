"""The topology as a RabbitMQ definitions document, recorded from the very calls `erp-sync migrate` makes.

A broker can load it at boot (`load_definitions`) or an operator can import it
(`rabbitmqctl import_definitions`), so a cluster holds every queue, with its arguments, before
any erp-sync process starts. Nothing here spells a name or an argument: `declare_topology` is run
against a channel that writes down what it is asked to declare.
"""
from __future__ import annotations

from typing import Any

from erp_sync.shared.topology import DEFAULT_QUEUE_BOUND, QueueBound, declare_topology


class _RecordingChannel:
    """A `DeclaringChannel` that keeps each declaration in definitions form."""

    def __init__(self, vhost: str) -> None:
        self.vhost = vhost
        self.exchanges: list[dict[str, Any]] = []
        self.queues: list[dict[str, Any]] = []
        self.bindings: list[dict[str, Any]] = []

    def exchange_declare(self, exchange: str, exchange_type: str, durable: bool) -> None:
        self.exchanges.append({"name": exchange, "vhost": self.vhost, "type": exchange_type, "durable": durable,
                               "auto_delete": False, "internal": False, "arguments": {}})

    def queue_declare(self, queue: str, durable: bool, arguments: dict[str, Any]) -> None:
        self.queues.append({"name": queue, "vhost": self.vhost, "type": arguments.get("x-queue-type", "classic"),
                            "durable": durable, "auto_delete": False, "arguments": dict(arguments)})

    def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        self.bindings.append({"source": exchange, "vhost": self.vhost, "destination": queue,
                              "destination_type": "queue", "routing_key": routing_key, "arguments": {}})


def topology_definitions(
    retry_delays_ms: tuple[int, ...],
    order_retry_interval_ms: int | None = None,
    bound: QueueBound = DEFAULT_QUEUE_BOUND,
    vhost: str = "/",
) -> dict[str, Any]:
    """Exchanges, queues and bindings of one vhost, as `declare_all` would declare them; sorted."""
    channel = _RecordingChannel(vhost)
    declare_topology(channel, retry_delays_ms, order_retry_interval_ms, bound)
    return {
        "exchanges": sorted(channel.exchanges, key=lambda e: e["name"]),
        "queues": sorted(channel.queues, key=lambda q: q["name"]),
        "bindings": sorted(channel.bindings, key=lambda b: (b["source"], b["destination"], b["routing_key"])),
        # Every rule lives in the queues' own arguments (they cannot drift once declared); a policy
        # an operator adds must not set the same keys, or the two would disagree on what applies.
        "policies": [],
    }
