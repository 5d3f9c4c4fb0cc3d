"""The orders worker: record placed orders with their stock holds, then push each to the ERP once.

One consumer takes `order.placed` from erp-sync.orders in batches, records them with their holds
in one transaction, and asks erp-sync.orders-push to push each. Another pushes from there,
ORDER_PUSH_CONCURRENCY orders at a time, each in its own transaction and acked on its own: an ERP
slow to answer one order holds up only that push, and an ERP that hangs holds up no recording.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import replace

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.consumer import ConcurrentConsumer, ConsumerConfig, Delivery, Handled, HandlerResult, parked
from erp_sync.shared.db import SessionOrConnection, engine_of
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.orders import OrderPlaced, decode_order, order_id_of, readable_parts
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WORK_QUEUES
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.erp_client import erp_client
from erp_sync.workers.order_probe import OrderProbe
from erp_sync.workers.order_store import (
    first_copies, note_conflict, record_orders, record_rejected, recorded_orders,
)
from erp_sync.workers.order_sync import build_push_handler, push_message
from erp_sync.workers.crash_guard import CrashGuard
from erp_sync.workers.outage_hold import OutageHold

logger = logging.getLogger(__name__)


def database_connections(settings: Settings) -> int:
    """Connections the worker uses at once: one per push, the batch being recorded, the probe."""
    return settings.order_push_concurrency + 2


# Both runners run on Core Connections of the sessions' engine, not on Sessions: a Session's begin,
# commit and close cost more CPU than a push's two statements, or than recording an order or two.
def build_runner(settings: Settings, session_factory: sessionmaker[Session],
                 config: ConsumerConfig) -> BatchRunner[Connection]:
    """The runner of erp-sync.orders: record whole batches, each order then handed on to be pushed."""
    return BatchRunner(record_order, engine_of(session_factory).connect, config, record_batch)


def build_push_runner(settings: Settings, session_factory: sessionmaker[Session],
                      config: ConsumerConfig) -> BatchRunner[Connection]:
    """The runner of erp-sync.orders-push: one order a transaction."""
    return BatchRunner(build_push_handler(settings), engine_of(session_factory).connect, config)


def record_batch(batch: list[Delivery], scope: SessionOrConnection) -> list[HandlerResult]:
    """Record a batch of orders with their holds at once (those not recorded yet); each then goes on to be pushed.

    Known ones too: a redelivered order may have lost its push message with the worker that recorded it.
    A different order under a recorded id is parked instead, with an alert: pushing it would lose one of the two.

    Raises:
        MessageDecodeError: a message is malformed; the consumer then records the batch message by
            message, and `record_order` parks that one.
    """
    orders = [decode_order(delivery.body, queued=True) for delivery in batch]
    recorded = record_orders(scope, orders)
    logger.info("%d orders recorded with their holds, %d known already (%s to %s)", len(recorded),
                len(orders) - len(recorded), orders[0].order_id, orders[-1].order_id)
    as_recorded = _as_they_stand(scope, orders, recorded)
    results: list[HandlerResult] = []
    for delivery, order in zip(batch, orders, strict=True):
        if not order.same_order(as_recorded[order.order_id]):
            note_conflict(scope, order.order_id)
            results.append(_conflict(delivery, order.order_id))
            continue
        # A second copy within the batch is a duplicate too.
        results.append(Handled("applied" if order.order_id in recorded else "duplicate", (push_message(order.order_id),)))
        recorded.discard(order.order_id)
    return results


def _as_they_stand(scope: SessionOrConnection, orders: list[OrderPlaced], recorded: set[str]) -> dict[str, OrderPlaced]:
    """Each order id's order as it stands recorded: the batch's first copy if it was recorded now, else the row's."""
    in_batch = first_copies(orders)
    known = in_batch.keys() - recorded
    # An order known but gone since (deleted by hand) has nothing to differ from.
    return in_batch | (recorded_orders(scope, known) if known else {})


def _conflict(delivery: Delivery, order_id: str) -> list[OutgoingMessage]:
    """Park a message that reuses a recorded order's id for another order: pushing either would lose the other."""
    reason = f"order id {order_id} is recorded already for a different order; place this one under a new order id"
    alert(Cause.ORDER_ID_CONFLICT, "order %s: parking a message that reuses its id for a different order", order_id)
    # Every parking raises message_parked too, as an event id's conflict does: a mail filter on it misses none.
    alert(Cause.MESSAGE_PARKED, "order %s: parking message: %s", order_id, reason)
    return [parked(WORK_QUEUES["orders"], delivery, reason, order_id)]


def record_order(delivery: Delivery, scope: SessionOrConnection) -> HandlerResult:
    """`record_batch` of one; a malformed order is recorded as rejected (when it names an order id) and parked.

    Parking is a follow-up message rather than a raised error: a raised error would roll back the
    rejected row with the handler's savepoint, and the order could not be looked up.

    Raises:
        MessageDecodeError: the body names no usable order id; the consumer parks it.
    """
    try:
        [result] = record_batch([delivery], scope)
    except MessageDecodeError as exc:
        if (order_id := order_id_of(delivery.body, delivery.message_id)) is None:
            raise
        reason = f"malformed order message: {exc}"
        recorded_now = record_rejected(scope, order_id, reason, *readable_parts(delivery.body))
        left = "" if recorded_now else "; the order recorded already under its id is left as it is"
        alert(Cause.MESSAGE_PARKED, "order %s: parking malformed message%s: %s", order_id, left, reason)
        follow_ups = [parked(WORK_QUEUES["orders"], delivery, reason, order_id)]
        # Recorded already: a copy an earlier release took (an order of more lines than MAX_ORDER_LINES,
        # redelivered across the upgrade) may have lost its push with the worker that recorded it. Its
        # push goes on, as a duplicate's does; one settled or not due ignores it.
        return follow_ups if recorded_now else [*follow_ups, push_message(order_id)]
    return result


def start_background(
    settings: Settings, session_factory: sessionmaker[Session], publisher: ConfirmingPublisher,
    config: ConsumerConfig, stop: threading.Event,
) -> list[BackgroundLoop]:
    """Start the pushes from erp-sync.orders-push, and the ERP probe (re-sends, holds past their grace).

    Once stopped, the pushes under way end; the broker hands those not begun to the next worker.
    """
    # Twice as many prefetched as pushed: the next order is at hand when a thread frees up.
    push_config = replace(config, prefetch=2 * settings.order_push_concurrency)
    # Held through a database outage, as the recording is (workers/runner.py): sent round the retry
    # path, an order's push could wait minutes with the database back, the ERP not knowing of it.
    engine = engine_of(session_factory)
    push_runner = CrashGuard.on(OutageHold.on(build_push_runner(settings, session_factory, push_config), engine, stop),
                                ORDERS_PUSH_QUEUE.name, engine, stop)
    pushes = ConcurrentConsumer(ORDERS_PUSH_QUEUE, push_runner, push_config, publisher,
                                concurrency=settings.order_push_concurrency)
    probe = OrderProbe(erp_client(settings), session_factory, publisher,
                       interval_s=settings.erp_probe_interval_s, grace_period_s=settings.hold_grace_period_s,
                       stranded_after_s=settings.order_stranded_after_s, erp_names_orders=settings.erp_names_orders)
    loops = [BackgroundLoop("the orders push consumer", pushes.run, stop),
             BackgroundLoop("the orders ERP probe", probe.run, stop)]
    for loop in loops:
        loop.start()
    return loops
