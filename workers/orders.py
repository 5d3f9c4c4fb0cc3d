"""The orders worker: record placed orders with their stock holds, then push each to the ERP once.

Two consumers in one process. One takes `order.placed` from erp-sync.orders in batches, records
them with their holds in one transaction, and hands each on to erp-sync.orders-push; the other
pushes from there, several orders at a time. An ERP that hangs slows the pushes only: orders
are still recorded, and their stock held, the moment they arrive.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.consumer import BatchRunner, Consumer, ConsumerConfig, Delivery, Handler
from erp_sync.workers.erp_client import ErpClient
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.models.orders import Order, OrderStatus
from erp_sync.shared.orders import decode_order, order_id_of
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.retry_policy import LAST_ERROR_HEADER, PARK_REASON_HEADER
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, PARKING_EXCHANGE, WORK_QUEUES
from erp_sync.workers.order_runner import PushRunner
from erp_sync.workers.order_sync import (
    RESEND_HEADER,
    RETRY_HEADER,
    STRANDED_HEADER,
    PushPolicy,
    load_locked,
    needs_push,
    push_order,
    record_orders,
)
from erp_sync.workers.background import BackgroundLoop

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 1000
# Headers that say what a push continues: an ERP retry chain, or the probe's re-send.
CARRIED_HEADERS = (RETRY_HEADER, RESEND_HEADER)


def erp_client(settings: Settings) -> ErpClient:
    """The ERP client for this process; stops the worker at start when ERP_BASE_URL or ERP_API_TOKEN is missing."""
    base_url, token = settings.erp_credentials()
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=parallel_pushes(settings))  # else extra connections are thrown away
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return ErpClient(
        session, base_url, token,
        connect_timeout_s=settings.erp_connect_timeout_s, read_timeout_s=settings.erp_read_timeout_s,
        ca_bundle=settings.erp_ca_bundle, tries=settings.erp_quick_retries,
        backoff_base_s=settings.erp_quick_retry_base_s,
    )


def push_policy(settings: Settings) -> PushPolicy:
    return PushPolicy(settings.erp_order_mode, settings.erp_warehouse_id, settings.order_retry_interval_s,
                      settings.order_retry_window_s)


def parallel_pushes(settings: Settings) -> int:
    """Pushes that may run at once: ORDER_PUSH_CONCURRENCY, one re-send in turn beside them, the ERP probe."""
    return settings.order_push_concurrency + 2


def database_connections(settings: Settings) -> int:
    """Connections the worker uses at once: one per push, and the batch being recorded."""
    return parallel_pushes(settings) + 1


def build_runner(settings: Settings, session_factory: sessionmaker[Session], config: ConsumerConfig) -> BatchRunner:
    """The runner of erp-sync.orders: record whole batches, each order then handed on to be pushed."""
    return BatchRunner(record_order, session_factory, config, record_batch)


def build_push_runner(
    settings: Settings, session_factory: sessionmaker[Session], config: ConsumerConfig, stop: threading.Event
) -> PushRunner:
    """The runner of erp-sync.orders-push: each order pushed in a transaction of its own, several at once."""
    return PushRunner(BatchRunner(build_push_handler(settings), session_factory, config),
                      concurrency=settings.order_push_concurrency,
                      in_turn=lambda delivery: RESEND_HEADER in delivery.headers,
                      stop=stop, hand_back=hand_back,
                      keep_over_budget=lambda delivery: STRANDED_HEADER in delivery.headers)


def record_order(delivery: Delivery, session: Session) -> list[OutgoingMessage]:
    """Record one order with its holds (nothing if it is recorded already), then have it pushed; park it if malformed."""
    try:
        order = decode_order(delivery.body)
    except MessageDecodeError as exc:
        return park_malformed(session, delivery, exc)
    if record_orders(session, [order]):
        logger.info("order %s recorded, %d lines held", order.order_id, len(order.line_items))
    return [push_request(delivery, order.order_id)]


def record_batch(batch: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
    """Record a batch of orders at once; each then goes on to be pushed.

    Raises:
        MessageDecodeError: a message is malformed; the consumer then records the batch message by
            message, and `record_order` parks that one.
    """
    orders = [decode_order(delivery.body) for delivery in batch]
    recorded = record_orders(session, orders)
    logger.info("%d orders recorded with their holds, %d known already (%s to %s)", len(recorded),
                len(orders) - len(recorded), orders[0].order_id, orders[-1].order_id)
    return [[push_request(delivery, order.order_id)] for delivery, order in zip(batch, orders, strict=True)]


def push_request(delivery: Delivery, order_id: str) -> OutgoingMessage:
    """The recorded order's message on its way to the pushes, with what it continues, if anything."""
    headers = {name: delivery.headers[name] for name in CARRIED_HEADERS if name in delivery.headers}
    return OutgoingMessage(ORDERS_PUSH_QUEUE.exchange, ORDERS_PUSH_QUEUE.routing_key, delivery.body, order_id,
                           delivery.content_type or "application/json", headers)


def hand_back(delivery: Delivery) -> OutgoingMessage:
    """A push message not begun when the worker stops, as it was, to the back of erp-sync.orders-push.

    A redelivered message may be all that is left of a retry chain (its worker died between commit
    and publish); handed back, it says so with the retry mark, as a fresh delivery no longer would.
    """
    headers = dict(delivery.headers)
    if delivery.redelivered:
        headers.setdefault(RETRY_HEADER, 0)
    return OutgoingMessage(ORDERS_PUSH_QUEUE.exchange, ORDERS_PUSH_QUEUE.routing_key, delivery.body,
                           delivery.message_id or "", delivery.content_type or "application/json", headers)


def build_push_handler(settings: Settings) -> Handler:
    """Push one recorded order to the ERP unless it is settled or its retry is on its way already."""
    client = erp_client(settings)
    policy = push_policy(settings)

    def push(delivery: Delivery, session: Session) -> list[OutgoingMessage] | None:
        order = decode_order(delivery.body)  # it decoded when it was recorded (or the probe rebuilt it)
        row = load_locked(session, order.order_id)
        # A retry chain's own message, the probe's re-send, or one the broker hands out again
        # (its first delivery may have died with a worker) push even a pending_sync order.
        # A stranded order's re-send carries the attempts the probe saw: if a push came in between,
        # it is stale and must not start a second retry chain beside the one that push started.
        # (Re-sends queued before that mark existed carry neither and count as before.)
        current_resend = RESEND_HEADER in delivery.headers and (
            STRANDED_HEADER not in delivery.headers or delivery.headers[RESEND_HEADER] == row.attempts)
        is_retry = RETRY_HEADER in delivery.headers or current_resend or delivery.redelivered
        if not needs_push(row, is_retry=is_retry, now=datetime.now(UTC)):
            logger.info("order %s is %s already; duplicate message ignored", order.order_id, row.status)
            return None
        return push_order(session, row, order, client, policy, delivery.body)

    return push


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
    session.execute(
        pg_insert(Order)
        .values(order_id=order_id, order_date=datetime.now(UTC), customer_ref="", status=OrderStatus.REJECTED.value,
                last_error=reason)
        .on_conflict_do_nothing(index_elements=[Order.order_id])
    )
    logger.error("ALERT order %s: parking malformed message: %s", order_id, reason)
    headers = dict(delivery.headers) | {PARK_REASON_HEADER: reason, LAST_ERROR_HEADER: reason}
    return [OutgoingMessage(PARKING_EXCHANGE, WORK_QUEUES["orders"].worker, delivery.body,
                            delivery.message_id or order_id, delivery.content_type or "application/json", headers)]


def start_background(
    settings: Settings, session_factory: sessionmaker[Session], publisher: ConfirmingPublisher,
    config: ConsumerConfig, stop: threading.Event,
) -> list[BackgroundLoop]:
    """Start the pushes from erp-sync.orders-push, and the ERP probe (re-sends, holds past their grace)."""
    from erp_sync.workers.order_probe import OrderProbe

    push_runner = build_push_runner(settings, session_factory, config, stop)
    pushes = Consumer(ORDERS_PUSH_QUEUE, push_runner, config, publisher)

    def push_until_stopped(stop: threading.Event) -> None:
        try:
            pushes.run(stop)
        finally:
            push_runner.close()

    probe = OrderProbe(erp_client(settings), session_factory, publisher,
                       interval_s=settings.erp_probe_interval_s, grace_period_s=settings.hold_grace_period_s,
                       stranded_after_s=settings.order_stranded_after_s)
    loops = [BackgroundLoop("the orders push consumer", push_until_stopped, stop),
             BackgroundLoop("the orders ERP probe", probe.run, stop)]
    for loop in loops:
        loop.start()
    return loops
