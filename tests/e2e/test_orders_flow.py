"""Orders end to end: storefront publish -> RabbitMQ -> orders worker -> sandbox ERP over HTTP -> read API."""
from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pika
import pytest

from erp_sync.shared.orders import publish_order
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WORK_QUEUES
from tests.support import cli
from tests.support.factories import inventory_event
from tests.support.orders import SKU, available, order, status_of, wait_status
from tests.support.sandbox import TOKEN
from tests.support.settings import TEST_RETRY_DELAYS_MS
from tests.support.waiting import wait_for
from tests.support.webhooks import post

ORDERS = WORK_QUEUES["orders"]


@pytest.mark.parametrize("mode, kind", [("orders", "order"), ("adjust", "adjust")])
def test_order_reaches_the_erp_once_in_either_mode(ingress, storefront, start_workers, order_settings, sandbox,
                                                  stock_of_50, mode, kind):
    # given the orders worker in this mode
    start_workers("orders", with_settings=order_settings(erp_order_mode=mode))

    # when the storefront publishes an order
    publish_order(storefront, order("ORD-E2E-1"))

    # then it is synced, its stock held, and the ERP deducted it once under its key
    state = wait_status(ingress, "ORD-E2E-1", "synced")
    assert state["attempts"] == 1 and state["synced_at"] and [h["quantity"] for h in state["holds"]] == [2]
    assert available(ingress) == 48
    [received] = sandbox.orders()
    assert (received["order_id"], received["kind"], received["idempotency_key"]) == ("ORD-E2E-1", kind, "ORD-E2E-1")
    assert sandbox.stock(SKU) == 48


def test_orders_are_recorded_and_held_while_the_erp_is_slow_to_take_earlier_ones(
        ingress, storefront, start_workers, order_settings, sandbox, stock_of_50):
    # given an ERP that takes 3 s to answer, and one push at a time
    sandbox.fault("slow", delay_ms=3000)
    start_workers("orders", with_settings=order_settings(order_push_concurrency=1, erp_read_timeout_s=10))
    publish_order(storefront, order("ORD-SLOW-1", quantity=1))
    wait_status(ingress, "ORD-SLOW-1", "received")

    # when more orders come while the first one's push is still waiting for the ERP
    publish_order(storefront, order("ORD-SLOW-2", quantity=2))
    publish_order(storefront, order("ORD-SLOW-3", quantity=3))

    # then they are recorded and their stock held at once, before the ERP has answered the first
    wait_status(ingress, "ORD-SLOW-3", "received", timeout=2.0)
    assert available(ingress) == 44
    assert status_of(ingress, "ORD-SLOW-1")["status"] == "received" and sandbox.orders() == []
    for order_id in ("ORD-SLOW-1", "ORD-SLOW-2", "ORD-SLOW-3"):
        wait_status(ingress, order_id, "synced", timeout=30)


def test_a_push_held_up_holds_up_no_other_push(ingress, storefront, start_workers, order_settings, sandbox,
                                              db_engine, committed_session):
    from sqlalchemy import text

    from erp_sync.shared.orders import OrderPlaced
    from erp_sync.workers.order_store import record_orders
    from erp_sync.workers.order_sync import push_message

    # given a recorded order whose push will be held up: its row locked, as a slow ERP call holds it
    record_orders(committed_session, [OrderPlaced.model_validate(order("ORD-HELD", quantity=1))])
    committed_session.commit()
    committed_session.execute(text("SELECT 1 FROM orders WHERE order_id = 'ORD-HELD' FOR UPDATE"))
    start_workers("orders", with_settings=order_settings(order_push_concurrency=2))
    storefront.publish(push_message("ORD-HELD"))

    def pushes_waiting_for_a_lock() -> int:
        with db_engine.connect() as watcher:  # a transaction of its own: activity is a snapshot per transaction
            return watcher.execute(text("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock' AND datname = current_database()")).scalar()

    wait_for(lambda: pushes_waiting_for_a_lock() == 1)

    # when another order comes while that push waits
    publish_order(storefront, order("ORD-FREE", quantity=2))

    # then it is pushed and synced meanwhile
    wait_status(ingress, "ORD-FREE", "synced")
    assert status_of(ingress, "ORD-HELD")["status"] == "received"

    # and once the held push goes on, that order is synced too, each in the ERP once
    committed_session.rollback()
    wait_status(ingress, "ORD-HELD", "synced")
    assert sorted(o["order_id"] for o in sandbox.orders()) == ["ORD-FREE", "ORD-HELD"]


def test_unknown_order_is_404(ingress):
    assert ingress.get("/api/v1/orders/NOPE").status_code == 404


def test_erp_down_then_back_syncs_the_order_once(ingress, storefront, start_workers, order_settings, sandbox,
                                                 stock_of_50):
    sandbox.fault("down")
    start_workers("orders", with_settings=order_settings(order_retry_window_s=60))

    publish_order(storefront, order("ORD-E2E-2"))

    state = wait_status(ingress, "ORD-E2E-2", "pending_sync")
    assert state["last_error"] and state["first_attempt_at"] and available(ingress) == 48
    sandbox.fault("none")
    state = wait_status(ingress, "ORD-E2E-2", "synced")
    assert state["attempts"] >= 2 and state["last_error"] is None
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-E2E-2"] and sandbox.stock(SKU) == 48


def test_an_unreachable_erp_sends_the_push_round_the_push_delay_queue(ingress, storefront, start_workers,
                                                                      order_settings, sandbox, broker):
    import json

    from tests.support.amqp import drain

    # given an ERP that fails and a retry interval long enough to find the retry waiting
    sandbox.fault("5xx")
    start_workers("orders", with_settings=order_settings(order_retry_interval_s=30, order_retry_window_s=600))

    # when an order is placed
    publish_order(storefront, order("ORD-DELAYED"))
    wait_status(ingress, "ORD-DELAYED", "pending_sync")

    # then its retry waits in the push queue's own delay queue (back to the pushes, not the recording)
    [waiting] = wait_for(lambda: drain(broker, ORDERS_PUSH_QUEUE.delay_queue(30_000)))
    assert waiting.properties.message_id == "ORD-DELAYED" and json.loads(waiting.body) == {"order_id": "ORD-DELAYED"}
    assert waiting.properties.delivery_mode == 2
    assert drain(broker, ORDERS.name) == []  # nothing went back to be recorded again


def test_erp_down_past_the_window_holds_locally_and_resends_when_back(ingress, storefront, start_workers,
                                                                      order_settings, sandbox, stock_of_50):
    sandbox.fault("5xx")
    start_workers("orders", with_settings=order_settings(order_retry_window_s=2))

    publish_order(storefront, order("ORD-OLD", quantity=1))
    publish_order(storefront, order("ORD-NEW", quantity=3))

    wait_status(ingress, "ORD-OLD", "local_only")
    wait_status(ingress, "ORD-NEW", "local_only")
    assert available(ingress) == 46
    time.sleep(1.0)  # the probe keeps finding the ERP failing: still local_only, still held
    assert status_of(ingress, "ORD-OLD")["status"] == "local_only" and available(ingress) == 46

    sandbox.fault("none")
    wait_status(ingress, "ORD-OLD", "synced")
    wait_status(ingress, "ORD-NEW", "synced")
    # re-sent oldest first, each once
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-OLD", "ORD-NEW"]
    assert sandbox.stock(SKU) == 46


def test_refused_order_is_rejected_and_its_stock_released(ingress, storefront, start_workers, order_settings,
                                                          sandbox, stock_of_50):
    sandbox.fault("none", reject_skus=[SKU])
    start_workers("orders", with_settings=order_settings())

    publish_order(storefront, order("ORD-E2E-400"))

    state = wait_status(ingress, "ORD-E2E-400", "rejected")
    assert "400" in state["last_error"] and [h["release_reason"] for h in state["holds"]] == ["rejected"]
    assert available(ingress) == 50 and sandbox.orders() == []


def test_duplicates_and_an_order_the_erp_has_end_synced_once(ingress, storefront, start_workers, order_settings,
                                                             sandbox):
    # given an order the ERP already took (409 on push)
    from erp_sync.shared.orders import OrderPlaced
    from erp_sync.workers.erp_client import erp_client

    erp_client(order_settings()).import_order(OrderPlaced.model_validate(order("ORD-409")))
    start_workers("orders", with_settings=order_settings())

    # when it and another order are each published three times
    for _ in range(3):
        publish_order(storefront, order("ORD-409"))
        publish_order(storefront, order("ORD-DUP"))

    # then both end synced and the ERP holds each once
    wait_status(ingress, "ORD-409", "synced")
    wait_status(ingress, "ORD-DUP", "synced")
    time.sleep(0.5)
    assert sorted(o["order_id"] for o in sandbox.orders()) == ["ORD-409", "ORD-DUP"]
    assert sandbox.stock(SKU) == 46
    assert status_of(ingress, "ORD-DUP")["attempts"] == 1


def test_malformed_order_is_parked_and_recorded(ingress, storefront, start_workers, order_settings, sandbox, broker):
    from erp_sync.shared.publisher import OutgoingMessage
    from erp_sync.shared.topology import ORDER_PLACED, ORDERS_EXCHANGE
    from tests.support.amqp import drain

    start_workers("orders", with_settings=order_settings())
    bad = b'{"order_id": "ORD-BAD", "order_date": "2024-01-20T10:15:00Z", "line_items": [{"sku": "X", "quantity": 0}]}'
    storefront.publish(OutgoingMessage(ORDERS_EXCHANGE, ORDER_PLACED, bad, "ORD-BAD"))
    publish_order(storefront, order("ORD-GOOD"))

    state = wait_status(ingress, "ORD-BAD", "rejected")
    assert "quantity" in state["last_error"]
    wait_status(ingress, "ORD-GOOD", "synced")  # the worker went on
    [parked] = wait_for(lambda: drain(broker, ORDERS.parking_queue))
    assert parked.body == bad


def test_hold_ends_only_with_a_newer_erp_figure(ingress, storefront, start_workers, order_settings, sandbox,
                                                stock_of_50):
    start_workers("orders", with_settings=order_settings())
    publish_order(storefront, order("ORD-HOLD"))
    state = wait_status(ingress, "ORD-HOLD", "synced")
    synced_at = datetime.fromisoformat(state["synced_at"])

    # when a figure stamped before the ERP's acknowledgement arrives (50: not counting the order yet)
    older = (synced_at - timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    post(ingress, inventory_event(new_quantity=50, sku=SKU) | {"timestamp": older})
    time.sleep(1.0)
    # then the order is still held
    assert available(ingress) == 48 and status_of(ingress, "ORD-HOLD")["holds"][0]["released_at"] is None

    # when a newer figure arrives (48: the ERP counted the order)
    newer = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    post(ingress, inventory_event(new_quantity=48, sku=SKU) | {"timestamp": newer})

    # then the hold ends and nothing is counted twice
    wait_for(lambda: status_of(ingress, "ORD-HOLD")["holds"][0]["release_reason"] == "erp_figure")
    assert available(ingress) == 48


def _queue_counts(amqp_url: str) -> tuple[int, int]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declared = connection.channel().queue_declare(ORDERS.name, passive=True)
        return declared.method.message_count, declared.method.consumer_count
    finally:
        connection.close()


def _start_worker_process(settings, sandbox_url: str):
    return cli.start(
        "worker", "orders",
        DATABASE_URL=settings.database_url, AMQP_URL=settings.amqp_url, ERP_BASE_URL=sandbox_url,
        ERP_API_TOKEN=TOKEN, ERP_READ_TIMEOUT_S="10", ORDER_RETRY_INTERVAL_S="1", ORDER_RETRY_WINDOW_S="30",
        RETRY_DELAYS_MS=",".join(map(str, TEST_RETRY_DELAYS_MS)), ERP_PROBE_INTERVAL_S="1",
    )


def test_worker_killed_during_the_push_leaves_the_order_in_the_erp_once(ingress, storefront, order_settings,
                                                                        sandbox, committed_session):
    settings = order_settings()
    # given a worker process and an ERP slow enough for the kill to land during the push
    sandbox.fault("slow", delay_ms=2000)
    worker = _start_worker_process(settings, sandbox.url)
    try:
        wait_for(lambda: _queue_counts(settings.amqp_url)[1] == 1, timeout=30)

        # when an order is taken and the worker is killed while the ERP works on it
        publish_order(storefront, order("ORD-KILL"))
        wait_status(ingress, "ORD-KILL", "received")
        time.sleep(0.5)  # recorded and pushed at once; the ERP takes 2 s to answer it
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
        cli.stop(worker)

    # then the ERP took it although the worker never recorded its answer: the order is still "received"
    wait_for(lambda: [o["order_id"] for o in sandbox.orders()] == ["ORD-KILL"], timeout=10)
    assert status_of(ingress, "ORD-KILL")["status"] == "received"

    # when a worker starts again
    sandbox.fault("none")
    worker = _start_worker_process(settings, sandbox.url)
    try:
        # then the redelivered order ends synced (409) and the ERP holds it once
        wait_status(ingress, "ORD-KILL", "synced", timeout=30)
    finally:
        output = cli.stop(worker)
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-KILL"], output
    assert sandbox.stock(SKU) == 48
