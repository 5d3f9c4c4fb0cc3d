"""The orders worker: record placed orders with their stock holds, then push each to the ERP once.

One consumer takes `order.placed` from erp-sync.orders in batches, records them with their holds
in one transaction, and asks erp-sync.orders-push to push each. Another pushes from there,
ORDER_PUSH_CONCURRENCY orders at a time, each in its own transaction and acked on its own: an ERP
slow to answer one order holds up only that push, and an ERP that hangs holds up no recording.
"""
from __future__ import annotations

import logging
import threading

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.consumer import (
    BatchRunner, ConcurrentConsumer, ConsumerConfig, Delivery, Handled, Handler, HandlerResult,
)
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.logs import ids
from erp_sync.shared.orders import decode_order, order_id_of
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.retry_policy import LAST_ERROR_HEADER, PARK_REASON_HEADER
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, PARKING_EXCHANGE, WORK_QUEUES
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.erp_client import ErpClient
from erp_sync.workers.order_probe import OrderProbe
from erp_sync.workers.order_store import lock, record_orders, record_rejected
from erp_sync.workers.order_sync import PushPolicy, is_due, push_message, push_order

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 1000


def erp_client(settings: Settings) -> ErpClient:
    """The ERP client for this process; stops the worker at start when ERP_BASE_URL or ERP_API_TOKEN is missing."""
    base_url, token = settings.erp_credentials()
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=settings.order_push_concurrency + 1)  # the pushes and the probe
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return ErpClient(
        session, base_url, token,
        connect_timeout_s=settings.erp_connect_timeout_s, read_timeout_s=settings.erp_read_timeout_s,
        ca_bundle=settings.erp_ca_bundle, tries=settings.erp_quick_retries,
        backoff_base_s=settings.erp_quick_retry_base_s,
    )


def database_connections(settings: Settings) -> int:
    """Connections the worker uses at once: one per push, the batch being recorded, the probe."""
    return settings.order_push_concurrency + 2


def build_runner(settings: Settings, session_factory: sessionmaker[Session], config: ConsumerConfig) -> BatchRunner:
    """The runner of erp-sync.orders: record whole batches, each order then handed on to be pushed."""
    return BatchRunner(record_order, session_factory, config, record_batch)


def record_order(delivery: Delivery, session: Session) -> HandlerResult:
    """Record one order with its holds (nothing if it is recorded already), then have it pushed; park it if malformed."""
    try:
        order = decode_order(delivery.body)
    except MessageDecodeError as exc:
        return park_malformed(session, delivery, exc)
    if not record_orders(session, [order]):
        return Handled("duplicate", (push_message(order.order_id),))
    logger.info("order %s recorded, %d lines held", order.order_id, len(order.line_items),
                extra=ids(order_id=order.order_id))
    return [push_message(order.order_id)]


def record_batch(batch: list[Delivery], session: Session) -> list[HandlerResult]:
    """Record a batch of orders at once; each then goes on to be pushed.

    Raises:
        MessageDecodeError: a message is malformed; the consumer then records the batch message by
            message, and `record_order` parks that one.
    """
    orders = [decode_order(delivery.body) for delivery in batch]
    recorded = record_orders(session, orders)
    logger.info("%d orders recorded with their holds, %d known already (%s to %s)", len(recorded),
                len(orders) - len(recorded), orders[0].order_id, orders[-1].order_id)
    # Known ones too: a redelivered order may have lost its push message with the worker that recorded it.
    results: list[HandlerResult] = []
    for order in orders:
        # A second copy within the batch is a duplicate too.
        results.append(Handled("applied" if order.order_id in recorded else "duplicate", (push_message(order.order_id),)))
        recorded.discard(order.order_id)
    return results


def park_malformed(session: Session, delivery: Delivery, error: MessageDecodeError) -> list[OutgoingMessage]:
    """Record a malformed order as rejected (when it names an order id) and park its message.

    Parking is a follow-up message rather than a raised error: a raised error would roll back the
    rejected row with the handler's savepoint, and the order could not be looked up.

    Raises:
        MessageDecodeError: the body names no usable order id; the consumer parks it.
    """
    order_id = order_id_of(delivery.body)
    if order_id is None:
        raise error
    reason = f"malformed order message: {error}"[:MAX_REASON_CHARS]
    record_rejected(session, order_id, reason)
    alert(Cause.MESSAGE_PARKED, "order %s: parking malformed message: %s", order_id, reason)
    headers = dict(delivery.headers) | {PARK_REASON_HEADER: reason, LAST_ERROR_HEADER: reason}
    return [OutgoingMessage(PARKING_EXCHANGE, WORK_QUEUES["orders"].worker, delivery.body,
                            delivery.message_id or order_id, delivery.content_type or "application/json", headers)]


def build_push_handler(settings: Settings) -> Handler:
    """Push the order a message names, if its row says it is due."""
    client = erp_client(settings)
    policy = PushPolicy.from_settings(settings)

    def push(delivery: Delivery, session: Session) -> list[OutgoingMessage] | None:
        order_id = order_id_of(delivery.body)
        locked = lock(session, order_id) if order_id else None
        if locked is None:
            raise MessageDecodeError(f"push message names no recorded order: {order_id}", raw=delivery.body)
        row, order = locked
        if not is_due(row, redelivered=delivery.redelivered):
            logger.info("order %s is %s, not due; message ignored", order_id, row.status)
            return None
        return push_order(session, row, order, client, policy)

    return push


def build_push_runner(settings: Settings, session_factory: sessionmaker[Session], config: ConsumerConfig) -> BatchRunner:
    """The runner of erp-sync.orders-push; its consumer hands it one message at a time."""
    return BatchRunner(build_push_handler(settings), session_factory, config)


def start_background(
    settings: Settings, session_factory: sessionmaker[Session], publisher: ConfirmingPublisher,
    config: ConsumerConfig, stop: threading.Event,
) -> list[BackgroundLoop]:
    """Start the pushes from erp-sync.orders-push, and the ERP probe (re-sends, holds past their grace).

    Once stopped, the pushes under way end; the broker hands those not begun to the next worker.
    """
    pushes = ConcurrentConsumer(ORDERS_PUSH_QUEUE, build_push_runner(settings, session_factory, config), config,
                                publisher, concurrency=settings.order_push_concurrency)
    probe = OrderProbe(erp_client(settings), session_factory, publisher,
                       interval_s=settings.erp_probe_interval_s, grace_period_s=settings.hold_grace_period_s,
                       stranded_after_s=settings.order_stranded_after_s)
    loops = [BackgroundLoop("the orders push consumer", pushes.run, stop),
             BackgroundLoop("the orders ERP probe", probe.run, stop)]
    for loop in loops:
        loop.start()
    return loops
