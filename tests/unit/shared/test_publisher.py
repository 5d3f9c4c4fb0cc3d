"""The publisher without a broker: it fails fast, and at once on the next try; what it can send."""
from __future__ import annotations

import pika.frame
import pytest

from erp_sync.shared.consumer import Delivery, parked
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE, WORK_QUEUES


def message(index: int, routing_key: str = "inventory.change", exchange: str = EVENTS_EXCHANGE) -> OutgoingMessage:
    return OutgoingMessage(exchange, routing_key, f'{{"n": {index}}}'.encode(), message_id=f"evt_{index}")


def test_unreachable_broker_fails_fast_with_broker_unavailable():
    publisher = ConfirmingPublisher("amqp://guest:guest@127.0.0.1:9/%2F", connect_timeout_s=1)

    with pytest.raises(BrokerUnavailable, match="cannot connect"):
        publisher.publish(message(1))
    # and a second attempt right after does not wait for another connect
    with pytest.raises(BrokerUnavailable, match="a moment ago"):
        publisher.publish(message(2))


def test_a_close_we_asked_for_is_routine_and_one_the_broker_made_is_news():
    import logging

    import pika.exceptions

    from erp_sync.shared.publisher import log_level_of

    assert log_level_of(pika.exceptions.ChannelClosedByClient(200, "Normal shutdown")) == logging.DEBUG
    assert log_level_of(pika.exceptions.ConnectionClosedByClient(200, "Normal shutdown")) == logging.DEBUG
    assert log_level_of(pika.exceptions.ChannelClosedByBroker(406, "PRECONDITION_FAILED")) == logging.WARNING
    assert log_level_of(pika.exceptions.StreamLostError("connection reset")) == logging.WARNING


def test_a_message_parked_with_headers_amqp_cannot_carry_again_can_be_sent():
    # given a delivery whose headers pika decoded but cannot encode (a double of 1e30 comes back an integer,
    # a NaN a float, which AMQP tables have no type for in pika)
    delivery = Delivery(delivery_tag=1, body=b"{}", message_id="evt-1", content_type="application/json",
                        headers={"sent-by": "a storefront", "big": 10**30, "ratio": float("nan")})

    # when it is parked
    message = parked(WORK_QUEUES["inventory"], delivery, "unexpected ValueError")

    # then its frames marshal (pika's I/O thread died on this before), keeping the value as text
    pika.frame.Header(1, len(message.body), message.properties()).marshal()
    assert message.headers["big"] == repr(10**30) and message.headers["ratio"] == "nan"
    assert message.headers["sent-by"] == "a storefront"
