"""The loop publisher against real RabbitMQ: the threaded publisher's outcomes, from coroutines."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest

from erp_sync.shared.async_publisher import LoopPublisher
from erp_sync.shared.errors import BrokerUnavailable, PublishRejected
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support.amqp import drain
from tests.support.tcp_proxy import TcpProxy


def message(index: int, routing_key: str = "inventory.change", exchange: str = EVENTS_EXCHANGE) -> OutgoingMessage:
    return OutgoingMessage(exchange, routing_key, f'{{"n": {index}}}'.encode(), message_id=f"evt_{index}")


def published(url: str, *messages: OutgoingMessage, **options: float) -> list[BaseException | None]:
    """Publish all at once on a new loop; each one's error, or None once confirmed."""
    async def run() -> list[BaseException | None]:
        publisher = LoopPublisher(url, **options)
        try:
            return list(await asyncio.gather(*(publisher.publish(m) for m in messages), return_exceptions=True))
        finally:
            await publisher.close()

    return asyncio.run(run())


def test_concurrent_publishes_are_all_confirmed_and_stored(broker):
    # when 2,000 coroutines publish through one publisher
    outcomes = published(broker, *(message(i) for i in range(2000)))

    # then every one is confirmed and on the queue, persistent
    assert outcomes == [None] * 2000
    landed = drain(broker, "erp-sync.inventory")
    assert sorted(m.properties.message_id for m in landed) == sorted(f"evt_{i}" for i in range(2000))
    assert {m.properties.delivery_mode for m in landed} == {2}


def test_bodies_longer_than_a_frame_arrive_byte_for_byte_beside_short_ones(broker):
    # given a body that RabbitMQ's frame size splits in three, published among short ones
    long_body = bytes(range(256)) * 1200
    big = OutgoingMessage(EVENTS_EXCHANGE, "inventory.change", long_body, message_id="evt_big")

    # when they go out together
    outcomes = published(broker, message(1), big, message(2))

    # then each is confirmed and stored whole, with its own properties
    assert outcomes == [None, None, None]
    landed = {m.properties.message_id: m for m in drain(broker, "erp-sync.inventory")}
    assert landed["evt_big"].body == long_body
    assert landed["evt_1"].body == b'{"n": 1}' and landed["evt_2"].body == b'{"n": 2}'
    assert {m.properties.delivery_mode for m in landed.values()} == {2}


def test_message_no_queue_takes_is_refused_not_silently_dropped(broker):
    [outcome] = published(broker, message(1, routing_key="nobody.listens"))

    assert isinstance(outcome, PublishRejected)
    assert "no queue is bound" in str(outcome)


def test_missing_exchange_is_unavailable_and_the_next_publish_reconnects(broker):
    async def run() -> None:
        publisher = LoopPublisher(broker)
        try:
            with pytest.raises(BrokerUnavailable, match="run `erp-sync migrate`"):
                await publisher.publish(message(1, exchange="no-such-exchange"))
            await publisher.publish(message(2))
        finally:
            await publisher.close()

    asyncio.run(run())

    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_2"]


def test_a_lost_broker_is_unavailable_to_every_caller_and_the_publisher_reconnects_by_itself(broker):
    parts = urlsplit(broker)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    proxied = urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def run() -> tuple[list[BaseException | None], list[BaseException | None]]:
        publisher = LoopPublisher(proxied, confirm_timeout_s=2.0, reconnect_interval_s=0.1)
        try:
            await publisher.publish(message(0))
            # when the connection is cut
            proxy.cut()
            during = await asyncio.gather(*(publisher.publish(message(i)) for i in range(1, 4)),
                                          return_exceptions=True)
            # and the broker comes back
            proxy.restore()
            after: list[BaseException | None] = []
            for _ in range(50):
                after = await asyncio.gather(publisher.publish(message(9)), return_exceptions=True)
                if after == [None]:
                    break
                await asyncio.sleep(0.2)
            return during, after
        finally:
            await publisher.close()

    try:
        during, after = asyncio.run(run())
    finally:
        proxy.close()

    # then each caller was told the broker is unavailable, and publishing resumed without a restart
    assert all(isinstance(outcome, BrokerUnavailable) for outcome in during), during
    assert after == [None]
    assert "evt_9" in [m.properties.message_id for m in drain(broker, "erp-sync.inventory")]
