from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from erp_sync.shared.errors import BrokerUnavailable, PublishRejected
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage, _Link
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support.amqp import drain


@pytest.fixture
def publisher(broker):
    publisher = ConfirmingPublisher(broker, confirm_timeout_s=5)
    yield publisher
    publisher.close()


def message(index: int, routing_key: str = "inventory.change", exchange: str = EVENTS_EXCHANGE) -> OutgoingMessage:
    return OutgoingMessage(exchange, routing_key, f'{{"n": {index}}}'.encode(), message_id=f"evt_{index}")


def test_concurrent_publishes_are_all_confirmed_and_stored(publisher, broker):
    # when 40 threads publish 2,000 messages through one publisher
    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda i: publisher.publish(message(i)), range(2000)))

    # then every one is on the queue, persistent
    landed = drain(broker, "erp-sync.inventory")
    assert sorted(m.properties.message_id for m in landed) == sorted(f"evt_{i}" for i in range(2000))
    assert {m.properties.delivery_mode for m in landed} == {2}


def test_message_no_queue_takes_is_refused_not_silently_dropped(publisher, broker):
    with pytest.raises(PublishRejected, match="no queue is bound"):
        publisher.publish(message(1, routing_key="nobody.listens"))


def test_missing_exchange_is_unavailable_says_to_migrate_and_the_next_publish_reconnects(publisher, broker):
    with pytest.raises(BrokerUnavailable, match="no exchange 'no-such-exchange'.*run `erp-sync migrate`"):
        publisher.publish(message(1, exchange="no-such-exchange"))

    publisher.publish(message(2))

    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_2"]


def test_channel_lost_amid_concurrent_publishes_answers_every_caller_and_loses_no_confirmed_message(
    publisher, broker
):
    # given 32 threads publishing while one of them sends to a missing exchange, which makes
    # the broker close the channel under all the others
    def publish(index: int) -> str:
        exchange = "no-such-exchange" if index == 100 else EVENTS_EXCHANGE
        try:
            publisher.publish(message(index, exchange=exchange), timeout_s=60)
        except BrokerUnavailable:
            return "unavailable"
        return "confirmed"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(publish, range(400)))

    # then every caller heard of the lost channel at once, none sat out its 60 s confirm timeout,
    # the bad one failed, and each message confirmed to its caller is on the queue
    assert time.monotonic() - started < 30
    assert outcomes[100] == "unavailable"
    confirmed = {f"evt_{i}" for i, outcome in enumerate(outcomes) if outcome == "confirmed"}
    landed = {m.properties.message_id for m in drain(broker, "erp-sync.inventory")}
    assert confirmed <= landed
    # and the publisher is usable again afterwards
    publisher.publish(message(1000))
    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_1000"]


def test_publish_after_close_reconnects(publisher, broker):
    publisher.publish(message(1))
    publisher.close()

    publisher.publish(message(2))

    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_1", "evt_2"]


def test_message_handed_to_a_connection_that_just_closed_fails_at_once(broker):
    # The race this covers: a caller took the connection a moment before it closed.
    parameters = pika.URLParameters(broker)
    link = _Link(parameters, connect_timeout_s=2)
    link.close()

    first, second = link.submit(message(1)), link.submit(message(2))

    for confirmation in (first, second):
        with pytest.raises(BrokerUnavailable):
            confirmation.wait(0.5)


def test_a_patient_publish_outlasts_a_confirm_timeout_far_too_short_for_its_windows(broker, caplog):
    # given a confirm timeout no window of 1,000 messages can meet
    publisher = ConfirmingPublisher(broker, confirm_timeout_s=0.0001)
    try:
        # when a worker publishes 2,500 follow-ups patiently
        publisher.publish_all([message(i) for i in range(2500)], patient=True)
    finally:
        publisher.close()

    # then every one is stored once: waiting longer was no reason to give up or publish again
    landed = drain(broker, "erp-sync.inventory")
    assert sorted(m.properties.message_id for m in landed) == sorted(f"evt_{i}" for i in range(2500))
    assert "the connection is alive, still waiting" in caplog.text
