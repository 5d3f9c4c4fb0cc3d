"""Stopping the orders worker while the ERP is slow: the push under way ends, the rest waits in the queue."""
from __future__ import annotations

import threading
import time

import pika

from erp_sync.shared.orders import publish_order
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
from tests.support.waiting import wait_for
from tests.support.orders import order, status_of, wait_status
from erp_sync.workers.registry import WORKERS
from erp_sync.workers.runner import run_worker

ORDER_IDS = [f"ORD-STOP-{n}" for n in range(4)]


class OrdersWorker:
    """`run_worker("orders")` in a thread, as the process would run it; keeps what it raised, if anything."""

    def __init__(self, settings) -> None:
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(settings,), daemon=True)
        self._thread.start()

    def _run(self, settings) -> None:
        try:
            run_worker(WORKERS["orders"], settings, self.stop)
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            self.failure = exc

    def stopped(self) -> bool:
        """Stop it, wait for the end, and say whether it ended cleanly."""
        self.stop.set()
        self._thread.join(timeout=30)
        return not self._thread.is_alive() and self.failure is None


def waiting_pushes(amqp_url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(ORDERS_PUSH_QUEUE.name, passive=True).method.message_count
    finally:
        connection.close()


def test_a_stopped_worker_ends_the_push_under_way_and_leaves_the_rest_queued(
        ingress, storefront, order_settings, sandbox, broker, committed_session):  # noqa: F811
    # given an ERP that takes 2 s to answer, one push at a time, and four orders recorded
    sandbox.fault("slow", delay_ms=2000)
    settings = order_settings(order_push_concurrency=1, erp_read_timeout_s=10)
    worker = OrdersWorker(settings)
    for order_id in ORDER_IDS:
        publish_order(storefront, order(order_id, quantity=1))
    for order_id in ORDER_IDS:
        wait_status(ingress, order_id, "received")
    time.sleep(0.5)  # the first push is now waiting for the ERP

    # when the worker is told to stop
    stopped = worker.stopped()

    # then it has stopped without pushing the whole backlog, and every order is either in the ERP
    # (and synced here) or back in the push queue, never both and never lost
    assert stopped, worker.failure
    in_erp = sorted(o["order_id"] for o in sandbox.orders())
    assert len(in_erp) < len(ORDER_IDS)
    assert all(status_of(ingress, order_id)["status"] == "synced" for order_id in in_erp)
    assert waiting_pushes(broker) == len(ORDER_IDS) - len(in_erp)

    # and a new worker pushes the rest, each order reaching the ERP once
    sandbox.fault("none")
    worker = OrdersWorker(settings)
    try:
        for order_id in ORDER_IDS:
            wait_status(ingress, order_id, "synced")
    finally:
        assert worker.stopped(), worker.failure
    assert sorted(o["order_id"] for o in sandbox.orders()) == ORDER_IDS
    wait_for(lambda: waiting_pushes(broker) == 0)
