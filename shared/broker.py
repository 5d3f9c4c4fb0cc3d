"""Short-lived blocking connections for set-up work (declaring the topology) and checks (queue depths)."""
from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, TypeVar

import pika
import pika.exceptions

from erp_sync.shared.amqp_url import CONNECT_ERRORS, amqp_parameters
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.parked_reader import parked_being_read
from erp_sync.shared.topology import WORK_QUEUES, DeclaringChannel, declare_topology

PRECONDITION_FAILED = 406
_P = ParamSpec("_P")
_T = TypeVar("_T")


def blocking_connection(amqp_url: str, name: str, blocked_timeout_s: float | None = None) -> pika.BlockingConnection:
    """A connection named for RabbitMQ's management views; `blocked_timeout_s`: how long a publish may wait
    out the broker's memory or disk alarm before the connection fails (None: for ever)."""
    parameters = amqp_parameters(amqp_url)
    parameters.client_properties = {"connection_name": f"erp-sync {name}"}
    parameters.blocked_connection_timeout = blocked_timeout_s
    try:
        return pika.BlockingConnection(parameters)
    except CONNECT_ERRORS as exc:
        raise BrokerUnavailable(f"cannot connect to RabbitMQ: {exc!r}{_hint(exc)}") from exc


def _hint(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError):
        return " (amqps:// to a port without TLS?)"
    if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
        # A vhost of one's own is not made by `erp-sync migrate`: RabbitMQ makes vhosts by its tools.
        return (" (does AMQP_URL's vhost exist, and may its user use it? `rabbitmqctl add_vhost NAME`, then "
                "`rabbitmqctl set_permissions -p NAME USER '.*' '.*' '.*'`)")
    return ""


def _on_a_connection_of_its_own(
    declare: Callable[Concatenate[DeclaringChannel, _P], None],
) -> Callable[Concatenate[str, _P], None]:
    def on_broker(amqp_url: str, /, *args: _P.args, **kwargs: _P.kwargs) -> None:
        connection = blocking_connection(amqp_url, "migrate")
        try:
            declare(connection.channel(), *args, **kwargs)
        except pika.exceptions.ChannelClosedByBroker as exc:
            hint = ""
            if exc.reply_code == PRECONDITION_FAILED:
                hint = ("; a queue exists with other arguments (a new QUEUE_MAX_LENGTH or QUEUE_MAX_BYTES?): "
                        "drain and delete it, then declare again (CHANGELOG.md)")
            raise BrokerUnavailable(f"declaring the topology failed: {exc}{hint}") from exc
        finally:
            if connection.is_open:
                connection.close()

    return on_broker


# `declare_topology` on a connection of its own to the URL given first, with the same options: the
# whole topology on the broker, harmless when it already exists.
declare_all = _on_a_connection_of_its_own(declare_topology)


@dataclass(frozen=True)
class Depths:
    """Messages ready on each queue, and whether a reader held the parked ones meanwhile (then their
    counts miss what it holds)."""

    ready: dict[str, int]
    parked_being_read: bool


def queue_depths(amqp_url: str, names: Iterable[str] | None = None) -> dict[str, int]:
    """Messages ready on each named queue (every work queue by default), by a passive declare."""
    return read_depths(amqp_url, names, asking_readers=False).ready


def read_depths(amqp_url: str, names: Iterable[str] | None = None, *, asking_readers: bool = True) -> Depths:
    """`queue_depths`, and whether a reader held the parked messages while they were counted."""
    connection = blocking_connection(amqp_url, "metrics")
    try:
        channel = connection.channel()

        def count() -> dict[str, int]:
            return {name: int(channel.queue_declare(name, passive=True).method.message_count)
                    for name in (names if names is not None else [queue.name for queue in WORK_QUEUES.values()])}

        if not asking_readers:
            return Depths(count(), parked_being_read=False)
        return Depths(*_counted_while_read(connection, count))
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"reading the queue depths failed: {exc!r}") from exc
    finally:
        if connection.is_open:
            connection.close()


@dataclass(frozen=True)
class Occupancy:
    """Each worker's (messages ready, consumers, messages parked), and whether a reader held the parked
    messages meanwhile (then their counts miss what it holds)."""

    queues: dict[str, tuple[int, int, int]]
    parked_being_read: bool


def queue_occupancy(amqp_url: str) -> Occupancy:
    """Each worker's queues, by passive declares."""
    connection = blocking_connection(amqp_url, "console")
    try:
        channel = connection.channel()

        def count() -> dict[str, tuple[int, int, int]]:
            occupancy: dict[str, tuple[int, int, int]] = {}
            for queue in WORK_QUEUES.values():
                work = channel.queue_declare(queue.name, passive=True).method
                parked = channel.queue_declare(queue.parking_queue, passive=True).method
                occupancy[queue.worker] = (int(work.message_count), int(work.consumer_count),
                                           int(parked.message_count))
            return occupancy

        return Occupancy(*_counted_while_read(connection, count))
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"reading the queues failed: {exc!r}") from exc
    finally:
        if connection.is_open:
            connection.close()


def _counted_while_read(connection: pika.BlockingConnection, count: Callable[[], _T]) -> tuple[_T, bool]:
    """`count()`, and whether a reader held the parked messages meanwhile: asked before and after,
    as a reader may begin or end while the queues are counted."""
    read_before = parked_being_read(connection)
    counted = count()
    return counted, read_before or parked_being_read(connection)
