"""Parked messages: listed with reason, id, attempts and time without being taken; replayed afresh; purged."""
from __future__ import annotations

import threading
import time

import pika
import pytest

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.consumer import Delivery, parked
from erp_sync.shared.dead_letters import DeadLetters
from erp_sync.shared.errors import ConfigurationError, ParkedBeingRead
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER
from erp_sync.shared.topology import PARKING_EXCHANGE, WORK_QUEUES
from tests.support.amqp import drain
from tests.support.parking import park
from tests.support.waiting import wait_for

PARKED_MANY = 3_000


def test_a_listing_shows_each_parked_message_and_takes_none(broker):
    # given two messages parked by the inventory and the catalog worker
    park(broker, "inventory", "evt_1", "IntegrityError: no", attempts=1)
    park(broker, "catalog", "evt_2", "gave up after 5 attempts", attempts=5)
    letters = DeadLetters(broker)

    # when they are listed, all and by queue
    listed = [m.summary() for m in letters.parked()]
    only_catalog = [m.message_id for m in letters.parked("catalog")]

    # then each shows where, what, why, how often and since when, and both are still parked
    assert {(m["queue"], m["id"], m["reason"], m["attempts"], m["parked_at"]) for m in listed} == {
        ("inventory", "evt_1", "IntegrityError: no", 1, "2026-12-04T03:00:00+00:00"),
        ("catalog", "evt_2", "gave up after 5 attempts", 5, "2026-12-04T03:00:00+00:00"),
    }
    assert only_catalog == ["evt_2"]
    assert len(letters.parked()) == 2


def test_a_replay_puts_the_message_back_on_its_work_queue_as_it_first_arrived(broker):
    park(broker, "inventory", "evt_1")
    # parked by its worker as it was delivered to it: with the broker's counts of its returns
    park(broker, "inventory", "evt_2", extra_headers={"x-delivery-count": 2, "x-acquired-count": 2})

    replayed = DeadLetters(broker).replay({"evt_2"})

    assert [m.message_id for m in replayed] == ["evt_2"]
    back = drain(broker, "erp-sync.inventory")
    assert [m.properties.message_id for m in back] == ["evt_2"]
    assert back[0].body == b'{"id": "evt_2"}'
    headers = back[0].properties.headers
    assert headers["x-keep"] == "kept"
    assert not {ATTEMPT_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER, "x-acquired-count"} & set(headers)
    assert headers.get("x-delivery-count", 0) == 0  # the work queue's own count (RabbitMQ 3.10 adds it at 0)
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["evt_1"]


def test_replay_all_of_one_queue_leaves_the_others_parked(broker):
    park(broker, "inventory", "evt_1")
    park(broker, "media", "media_1")

    DeadLetters(broker).replay(None, "inventory")

    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_1"]
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["media_1"]


def test_purge_drops_and_counts_per_queue(broker):
    park(broker, "orders", "ORD-1")
    park(broker, "orders", "ORD-2")

    purged = DeadLetters(broker).purge("orders")

    assert purged == {"orders": 2}
    assert DeadLetters(broker).parked() == []


@pytest.mark.parametrize("named", ["orders", "erp-sync.orders", "erp-sync.orders.parked"])
def test_a_queue_is_named_as_the_commands_show_it_or_as_rabbitmq_and_the_alerts_do(broker, named):
    # ErpSyncMessagesParked's `queue` label is RabbitMQ's name; `dlq list` showed the worker's
    park(broker, "orders", "ORD-1")
    park(broker, "inventory", "evt_1")

    parked = DeadLetters(broker).parked(named)

    assert [(message.worker, message.message_id) for message in parked] == [("orders", "ORD-1")]


def test_a_listing_with_a_limit_looks_at_no_message_past_it(broker):
    # each message read is taken and handed back: a delivery to RabbitMQ, which a limit must spare
    for n in range(3):
        park(broker, "inventory", f"evt_{n}")

    listed = DeadLetters(broker).parked(limit=2)

    assert [message.message_id for message in listed] == ["evt_0", "evt_1"]
    counts = {m.properties.message_id: (m.properties.headers or {}).get("x-delivery-count", 0)
              for m in drain(broker, "erp-sync.inventory.parked")}
    assert counts["evt_2"] == 0 and counts["evt_0"] >= 1


def test_a_listing_takes_each_message_only_when_it_comes_to_it(broker):
    # a parking queue may hold more bodies than the command's memory: it holds one at a time
    for n in range(3):
        park(broker, "catalog", f"evt_{n}")

    with DeadLetters(broker).reading("catalog") as messages:
        first = next(messages)
        still_waiting = ready(broker, "erp-sync.catalog.parked")
        rest = [message.message_id for message in messages]

    assert (first.message_id, still_waiting, rest) == ("evt_0", 2, ["evt_1", "evt_2"])
    assert ready(broker, "erp-sync.catalog.parked") == 3


def ready(amqp_url: str, queue: str) -> int:
    return queue_depths(amqp_url, [queue])[queue]


def test_an_unknown_queue_is_named_with_the_ones_that_exist(broker):
    with pytest.raises(ConfigurationError, match="no queue 'nope'; the queues are catalog, inventory"):
        DeadLetters(broker).parked("nope")


def test_a_message_parked_on_its_first_attempt_shows_one_attempt_however_often_it_is_listed(broker):
    # given an event a worker parked on its first delivery, as the consumer parks it
    first_try = Delivery(1, b"{not json", "evt_1", "application/json", {}, False)
    publisher = ConfirmingPublisher(broker)
    try:
        publisher.publish(parked(WORK_QUEUES["inventory"], first_try, "MessageDecodeError: not JSON"))
    finally:
        publisher.close()
    letters = DeadLetters(broker)

    # when the on-call person lists it again and again (each listing hands it back: the queue counts a delivery)
    listings = [letters.parked("inventory") for _ in range(4)]

    # then it was parked after one attempt, every time
    assert [[m.attempts for m in listed] for listed in listings] == [[1]] * 4


@pytest.mark.parametrize("body, named", [(b'{"event_id": "evt_9", "event_type": "stock.teleported"}', "evt_9"),
                                         (b'{"order_id": " ORD-9 ", "line_items": []}', "ORD-9"),
                                         (b"{not json", "")])
def test_a_message_without_a_message_id_is_parked_under_the_id_its_body_names(broker, body, named):
    # given a message published without a message id, parked by a worker
    publisher = ConfirmingPublisher(broker)
    try:
        publisher.publish(parked(WORK_QUEUES["orders"], Delivery(1, body, None, "application/json", {}, False), "bad"))
    finally:
        publisher.close()
    letters = DeadLetters(broker)

    # then it is listed under that id, and replayed by it
    assert [m.message_id for m in letters.parked("orders")] == [named]
    assert [m.message_id for m in letters.replay({named}, "orders")] == [named]


def test_a_second_reader_is_told_the_messages_are_being_read_not_that_none_are_parked(broker):
    # what one reader holds, another would not see: two people on call, or the console and the command
    park(broker, "inventory", "evt_1")

    with DeadLetters(broker).reading() as first_reader:
        next(first_reader)
        with pytest.raises(ParkedBeingRead, match="another `erp-sync dlq` command or the console is reading"):
            DeadLetters(broker).replay({"evt_1"})

    # once the first has ended, the message is there for the next
    assert [m.message_id for m in DeadLetters(broker).replay({"evt_1"})] == ["evt_1"]


def test_a_reader_that_may_wait_takes_its_turn_when_the_other_ends(broker):
    park(broker, "orders", "ORD-1")
    first_done = threading.Event()

    def read_for_a_second() -> None:
        with DeadLetters(broker).reading() as messages:
            next(messages)
            reading.set()
            time.sleep(1.0)
        first_done.set()

    reading = threading.Event()
    threading.Thread(target=read_for_a_second, daemon=True).start()
    assert reading.wait(10)

    shown = DeadLetters(broker, wait_s=30).parked("orders")

    assert first_done.is_set() and [m.message_id for m in shown] == ["ORD-1"]


def test_a_name_that_is_no_queue_is_told_at_once_while_another_reads(broker):
    park(broker, "inventory", "evt_1")

    with DeadLetters(broker).reading() as first_reader:
        next(first_reader)
        with pytest.raises(ConfigurationError, match="no queue 'nope'"):
            DeadLetters(broker, wait_s=30).parked("nope")


def test_a_listing_hands_every_message_back_before_it_prints(broker, settings_factory, monkeypatch):
    # a pager or a slow pipe must not hold the parked messages, nor keep the other readers waiting
    from erp_sync.cli import dlq

    park(broker, "inventory", "evt_1")
    park(broker, "inventory", "evt_2")
    free_when_printing: list[bool] = []

    def printing(*_: object, **__: object) -> None:
        free_when_printing.append(len(DeadLetters(broker).parked("inventory")) == 2)

    monkeypatch.setattr(dlq, "print", printing, raising=False)
    dlq.run_dlq(settings_factory(amqp_url=broker), dlq_arguments("list", "inventory"))

    assert free_when_printing == [True, True]


def dlq_arguments(*argv: str):
    import argparse

    from erp_sync.cli import dlq

    parser = argparse.ArgumentParser()
    dlq.register(parser.add_subparsers())
    return parser.parse_args(["dlq", *argv])


def test_the_consoles_counted_listing_holds_no_message_content(broker):
    # given a parked catalog message of a bulk load's size
    park(broker, "catalog", "evt_big", body=b"x" * 2_000_000)

    # when the console's page lists what is parked
    listed, counts = DeadLetters(broker).counted("catalog")

    # then it holds the message's id and reason, not its 2 MB (a hundred of them held half a gigabyte)
    [message] = listed
    assert (message.message_id, message.body, message.headers) == ("evt_big", b"", {})
    assert counts["catalog"] == 1 and DeadLetters(broker).parked("catalog")[0].body == b"x" * 2_000_000


def park_many(amqp_url: str, worker: str, count: int, body: bytes = b"{}") -> None:
    """`count` messages parked on the worker's parking queue, published at once and counted there."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        headers = {PARK_REASON_HEADER: "ValueError: bad", ATTEMPT_HEADER: 1, PARKED_AT_HEADER: "2026-12-04T03:00:00+00:00"}
        for n in range(count):
            channel.basic_publish(PARKING_EXCHANGE, worker, body, pika.BasicProperties(
                message_id=f"evt_{n}", headers=headers, delivery_mode=2))
        queue = WORK_QUEUES[worker].parking_queue
        wait_for(lambda: channel.queue_declare(queue, passive=True).method.message_count == count, timeout=60)
    finally:
        connection.close()


def test_the_reader_after_one_that_read_thousands_finds_them_all_parked(broker):
    # given thousands parked, and one of them replayed (each read, all but it handed back)
    park_many(broker, "inventory", PARKED_MANY)
    letters = DeadLetters(broker)
    assert [m.message_id for m in letters.replay({"evt_0"}, "inventory")] == ["evt_0"]

    # when the next reader comes right after (the console's overview, then its parked page)
    listed, counts = letters.counted("inventory")

    # then it finds every other one parked, not those already handed back alone
    assert counts["inventory"] == PARKED_MANY - 1 and len(listed) == PARKED_MANY - 1


def test_a_reader_that_stops_early_leaves_every_message_parked_and_counted(broker):
    # given parked messages read in batches: a reader stopping early holds a few past the last it read
    park_many(broker, "inventory", 300)
    letters = DeadLetters(broker)

    # when one reader stops after five
    with letters.reading("inventory") as messages:
        first = [next(messages).message_id for _ in range(5)]

    # then it read the oldest, and every one is back at once for the next reader to count and read
    assert first == [f"evt_{n}" for n in range(5)]
    assert ready(broker, "erp-sync.inventory.parked") == 300
    assert sorted(m.message_id for m in letters.parked("inventory")) == sorted(f"evt_{n}" for n in range(300))


def test_a_full_read_hands_the_messages_back_in_the_order_it_read_them(broker):
    # given more parked than RabbitMQ 3.10 hands back in order from one take (32)
    park_many(broker, "inventory", 300)
    letters = DeadLetters(broker)

    # when they are read in full, twice
    first_read = [m.message_id for m in letters.parked("inventory")]
    second_read = [m.message_id for m in letters.parked("inventory")]

    # then both readers found them oldest first
    assert first_read == second_read == [f"evt_{n}" for n in range(300)]


def test_a_reader_takes_only_the_messages_parked_when_it_began(broker):
    # given three parked orders
    for n in range(3):
        park(broker, "orders", f"ORD-{n}")

    # when a fourth is parked while a reader reads them
    with DeadLetters(broker).reading("orders") as messages:
        first = next(messages).message_id
        park(broker, "orders", "ORD-late")
        rest = [m.message_id for m in messages]

    # then the reader read the three alone, and all four are parked
    assert [first, *rest] == ["ORD-0", "ORD-1", "ORD-2"]
    still_parked = sorted(m.message_id for m in DeadLetters(broker).parked("orders"))
    assert still_parked == ["ORD-0", "ORD-1", "ORD-2", "ORD-late"]


def test_after_a_reader_stops_mid_batch_the_next_reads_every_message_in_turn(broker):
    # given 300 parked, of 16 KiB each (a batch's rest is still on its way when the reader stops), and
    # a reader that stops at 100, within its batch of 64 (messages 63 to 126)
    park_many(broker, "inventory", 300, body=b"{}" + b" " * 16_384)
    letters = DeadLetters(broker)
    with letters.reading("inventory") as messages:
        for _ in range(100):
            next(messages)

    # when the next reader reads them all
    read = [int(m.message_id.removeprefix("evt_")) for m in letters.parked("inventory")]

    # then it found each once, in their order from where the queue's head now is: the rest of the
    # batch was handed back with it, not rejected one by one ahead of the others
    assert sorted(read) == list(range(300))
    start = read.index(0)
    assert read[start:] + read[:start] == list(range(300))
