"""The workers against failing parts: a database that goes away, a message that can never succeed."""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import SUSPECT_RETURNS, Delivery
from erp_sync.shared.models.operations import UnfinishedAttempt
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WORK_QUEUES
from erp_sync.workers.crash_guard import UNFINISHED_LIMIT, message_key
from erp_sync.workers.order_sync import push_message

from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support.amqp import Landed, drain, returned
from tests.support.processes import Process
from tests.support.settings import TEST_RETRY_DELAYS_MS
from tests.support.waiting import wait_for
from tests.support.webhooks import post
from tests.support.factories import inventory_event, now_iso
from tests.support.tcp_proxy import TcpProxy


def erp_quantity(client, sku):
    answer = client.get(f"/api/v1/inventory/{sku}")
    return answer.get_json()["erp_quantity"] if answer.status_code == 200 else None


@pytest.fixture
def database_proxy(migrated_database_url):
    parts = urlsplit(migrated_database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    proxy.close()


def test_a_database_outage_holds_the_figure_until_the_database_answers_then_applies_it(
        ingress, settings_factory, start_workers, database_proxy, broker, caplog):
    # given the inventory worker reaching PostgreSQL through a proxy that is then cut
    proxy, proxied_url = database_proxy
    start_workers("inventory", with_settings=settings_factory(database_url=proxied_url))
    post(ingress, inventory_event(sku="SKU-OUTAGE", new_quantity=10))
    wait_for(lambda: erp_quantity(ingress, "SKU-OUTAGE") == 10)
    proxy.cut()

    # when a figure arrives while the database is away, for longer than the retry path's first
    # delays, and the database then comes back
    post(ingress, inventory_event(sku="SKU-OUTAGE", new_quantity=7))
    wait_for(lambda: "the database does not answer: holding 1 messages" in caplog.text, timeout=10)
    time.sleep(3)
    proxy.restore()
    back = time.monotonic()

    # then the figure lands within a probe of the database's return, having waited in no delay
    # queue (whose delays grow while an outage lasts), and nothing was parked
    wait_for(lambda: erp_quantity(ingress, "SKU-OUTAGE") == 7, timeout=20)
    assert time.monotonic() - back < 5
    assert delay_queue_traffic(broker) == 0
    assert drain(broker, "erp-sync.inventory.parked") == []


def delay_queue_traffic(amqp_url):
    """How many inventory messages wait in a delay queue right now."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        return sum(channel.queue_declare(f"erp-sync.inventory.delay.{ms}ms", passive=True).method.message_count
                   for ms in TEST_RETRY_DELAYS_MS)
    finally:
        connection.close()


def test_message_that_can_never_succeed_is_parked_with_its_reason_and_work_goes_on(ingress, start_workers, broker):
    # given the inventory worker
    start_workers("inventory")
    publisher = ConfirmingPublisher(broker)

    # when someone puts a body on the queue that is no event, followed by a good event
    publisher.publish(OutgoingMessage(EVENTS_EXCHANGE, "inventory.change", b"not json at all", message_id="bad-1"))
    publisher.close()
    post(ingress, inventory_event(sku="SKU-AFTER", new_quantity=3))

    # then the good one is applied, and the bad one is parked with its reason, byte for byte
    wait_for(lambda: erp_quantity(ingress, "SKU-AFTER") == 3)
    parked = wait_for(lambda: drain(broker, "erp-sync.inventory.parked"))
    assert [m.body for m in parked] == [b"not json at all"]
    assert "not valid JSON" in parked[0].properties.headers["x-erp-sync-park-reason"]


def died_on_alone(session: Session, queue: str, landed: Landed) -> None:
    """Note that `landed`'s worker died on it `UNFINISHED_LIMIT` times while it ran alone, as the
    crash guard counts it (tests/integration/workers/test_crash_guard.py kills a worker for real)."""
    delivery = Delivery(0, landed.body, landed.properties.message_id, landed.properties.content_type)
    session.add(UnfinishedAttempt(queue=queue, message_key=message_key(delivery), attempts=UNFINISHED_LIMIT,
                                  started_at=datetime.now(UTC)))
    session.commit()


@pytest.mark.parametrize("role", ["inventory", "orders"])
def test_a_message_its_worker_died_on_too_often_is_parked_alone_and_the_next_one_is_applied(
        ingress, start_workers, broker, committed_session, order_settings, role):
    # given a message its worker died on twice among its neighbours, then three times alone
    if role == "inventory":
        queue, after = WORK_QUEUES["inventory"], inventory_event(sku="SKU-AFTER-DEATHS", new_quantity=6)
        post(ingress, inventory_event(sku="SKU-DEATHS", new_quantity=5))
    else:
        queue, after = ORDERS_PUSH_QUEUE, None
        publisher = ConfirmingPublisher(broker)
        publisher.publish(push_message("ORD-DEATHS"))
        publisher.close()
    fatal = returned(broker, queue.name, SUSPECT_RETURNS)
    died_on_alone(committed_session, queue.name, fatal)

    # when its worker starts again, and another message follows
    start_workers(role, with_settings=order_settings() if role == "orders" else None)
    if after is not None:
        post(ingress, after)

    # then it is parked, untried, with why; the one after it is applied
    parked = wait_for(lambda: drain(broker, queue.parking_queue))
    assert [m.properties.message_id for m in parked] == [fatal.properties.message_id]
    assert f"its worker stopped {UNFINISHED_LIMIT} times" in parked[0].properties.headers["x-erp-sync-park-reason"]
    if role == "inventory":
        wait_for(lambda: erp_quantity(ingress, "SKU-AFTER-DEATHS") == 6)
        assert erp_quantity(ingress, "SKU-DEATHS") is None


def test_two_workers_on_one_queue_end_where_one_would(ingress, start_workers):
    # given two inventory worker consumers on the same queue
    start_workers("inventory", "inventory")
    skus = [f"SKU-PAIR-{n}" for n in range(5)]
    events = []
    for sku in skus:
        for minute in range(20):
            event = inventory_event(sku=sku, new_quantity=minute)
            event["timestamp"] = now_iso(timedelta(minutes=minute - 30))
            events.append(event)
    events += random.Random(7).sample(events, 30)  # replays
    random.Random(11).shuffle(events)

    # when 130 events arrive in random order, some twice
    for event in events:
        post(ingress, event)

    # then every SKU ends on its newest figure
    wait_for(lambda: all(erp_quantity(ingress, sku) == 19 for sku in skus), timeout=30)


def test_a_broker_outage_is_told_in_the_workers_own_lines_without_pikas_errors(settings_factory, broker):
    # given an inventory worker process reaching RabbitMQ through a proxy
    parts = urlsplit(broker)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    proxied = urlunsplit((parts.scheme, f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}", parts.path,
                          parts.query, ""))
    worker = Process(settings_factory(amqp_url=proxied), "worker", "inventory")
    try:
        wait_for(lambda: "consuming erp-sync.inventory" in worker.output(), timeout=30)

        # when RabbitMQ is away for three reconnection attempts, then back
        proxy.cut()
        wait_for(lambda: worker.output().count("lost RabbitMQ") >= 3, timeout=30)
        proxy.restore()
        wait_for(lambda: worker.output().count("consuming erp-sync.inventory") == 2, timeout=60)
        output = worker.output()
    finally:
        worker.kill()
        proxy.close()

    # then each failed attempt was one WARNING line of the worker's: no ERROR line, no traceback
    assert "Traceback" not in output
    assert [line for line in output.splitlines() if " ERROR " in line] == []
