"""Pushing a recorded order to the ERP: the order's row says whether to, and keeps the outcome (spec 7.2).

    received ──push ok / 409──▶ synced
             ──4xx──────────▶ rejected (holds released at once, alert)
             ──unreachable──▶ pending_sync ──its retry, ORDER_RETRY_INTERVAL_S later──▶ push again
                              └── ORDER_RETRY_WINDOW_S after the first attempt ──▶ local_only
    local_only ──the ERP probe re-sends one──▶ push again; once it is settled, the next local_only
               order follows: the oldest not tried since it turned local_only, then the one overdue
               longest (one that fails waits ORDER_RETRY_INTERVAL_S)

A push message only names the order. Its receiver locks the row and pushes only a due order, so a
duplicate, a stale retry or a re-send is harmless: at most one message of an order finds it due.
Each push message is handed to its own thread (ConcurrentConsumer): a slow ERP call holds up only
its own order.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.consumer import Delivery, HandlerResult
from erp_sync.shared.db import SessionOrConnection
from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable, MessageDecodeError
from erp_sync.shared.logs import ids
from erp_sync.shared.models.states import OrderStatus
from erp_sync.shared.orders import OrderPlaced, fits_a_header, order_id_of
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, order_retry_route
from erp_sync.workers.erp_client import ErpClient, PushResult, erp_client
from erp_sync.workers.erp_clock import ErpClock, furthest_ahead
from erp_sync.workers.hold_rule import release_holds
from erp_sync.workers.order_store import PushState, claim, lock, save

logger = logging.getLogger(__name__)


def push_message(order_id: str, exchange: str = ORDERS_PUSH_QUEUE.exchange,
                 routing_key: str = ORDERS_PUSH_QUEUE.routing_key) -> OutgoingMessage:
    """"Push order X": the body names the order and nothing else."""
    return OutgoingMessage(exchange, routing_key, json.dumps({"order_id": order_id}).encode(), order_id)


def is_due(row: PushState, *, redelivered: bool) -> bool:
    """Whether a message naming this order should push it now."""
    if row.status in (OrderStatus.SYNCED, OrderStatus.REJECTED):
        return False
    if row.next_attempt_at is not None and row.next_attempt_at > row.now:
        # Its retry waits in the delay queue (a local_only one: for a later probe round). A
        # redelivered message may be all that is left of that retry (its worker died between the
        # commit and the publish): pushed early, it costs one call, and the retry it overtook then
        # finds the order not yet due.
        return redelivered
    return True


def build_push_handler(settings: Settings) -> Callable[[Delivery, SessionOrConnection], HandlerResult]:
    """Push the order a message names, if its row says it is due (on a Connection in the worker; a Session will do)."""
    client = erp_client(settings)

    def push(delivery: Delivery, scope: SessionOrConnection) -> list[OutgoingMessage] | None:
        order_id = order_id_of(delivery.body)
        locked = lock(scope, order_id) if order_id else None
        if locked is None:
            raise MessageDecodeError(f"push message names no recorded order: {order_id}", raw=delivery.body)
        row, order = locked
        if not is_due(row, redelivered=delivery.redelivered):
            logger.info("order %s is %s, not due; message ignored", order_id, row.status)
            return None
        return push_order(scope, row, order, client, settings)

    return push


def next_attempt(first_attempt_at: datetime, now: datetime, interval_s: int, window_s: int) -> datetime | None:
    """When to try an unreachable ERP again; None once the retry window is over (local_only)."""
    if now - first_attempt_at >= timedelta(seconds=window_s):
        return None
    return now + timedelta(seconds=interval_s)


def push_order(scope: SessionOrConnection, row: PushState, order: OrderPlaced, client: ErpClient,
               settings: Settings) -> list[OutgoingMessage]:
    """Push one due order and record the outcome on its row; returns what comes next for it, if anything.

    Never raises for the ERP's answers: they are the order's state, not a failure of the message.
    """
    was_local_only = row.status == OrderStatus.LOCAL_ONLY
    follow_ups: list[OutgoingMessage] = []
    if not fits_a_header(order.order_id):
        # Taken before publish_order checked ids (or published around it): no call can carry it, and
        # retried, it held its stock for good.
        _rejected(scope, row, "its order id cannot go to the ERP as the Idempotency-Key header (printable ASCII "
                              "only): never sent; place the order again under another id", by="erp-sync")
    else:
        follow_ups = _pushed(scope, row, order, client, settings)
    save(scope, row)
    if was_local_only and row.status != OrderStatus.LOCAL_ONLY:
        # Settled: the other local_only orders go one after another beside the others (order_store.claim).
        follow_ups += [push_message(order_id) for order_id, _ in claim(scope, None, local_only=True)]
    return follow_ups


def _pushed(scope: SessionOrConnection, row: PushState, order: OrderPlaced, client: ErpClient,
            settings: Settings) -> list[OutgoingMessage]:
    """Send the order, and keep the ERP's answer on its row; what comes next for it, if anything."""
    row.attempts += 1
    row.first_attempt_at = row.first_attempt_at or row.now
    try:
        result = client.adjust_inventory(order, settings.erp_warehouse_id) if settings.erp_order_mode == "adjust" \
            else client.import_order(order)
    except ErpRejected as exc:
        _rejected(scope, row, f"ERP refused the order ({exc.status}): {exc.body}")
    except ErpUnavailable as exc:
        return _unavailable(row, exc, settings)
    else:
        _synced(row, result, settings)
    return []


def _synced(row: PushState, result: PushResult, settings: Settings) -> None:
    row.status = OrderStatus.SYNCED.value
    row.synced_at = result.acknowledged_at
    if settings.erp_names_orders:
        # No mark: a figure made before the deduction but stamped in the same second would end the
        # hold early, and the figure that names the order ends it exactly.
        row.erp_received_at = None
    else:
        # A figure stamped at or after this mark includes the order and ends its holds (migration 0010).
        clock = ErpClock(result.sent_at or result.acknowledged_at, result.acknowledged_at, result.erp_date,
                         timedelta(seconds=settings.erp_clock_skew_s),
                         furthest_ahead(settings.webhook_max_future_skew_s))
        if (ignored := clock.date_ignored()) is not None:
            logger.warning("order %s: %s", row.order_id, ignored, extra=ids(order_id=row.order_id))
        row.erp_received_at = clock.at_receipt()
    row.next_attempt_at = None
    row.last_error = None
    # A 409's body is the ERP's only word on why it had the order: kept in the log, as `last_error` is cleared.
    logger.info("order %s synced (attempt %d%s)", row.order_id, row.attempts,
                f", the ERP already had it: {result.body or 'no body'}" if result.already_imported else "",
                extra=ids(order_id=row.order_id, attempt=row.attempts))


def _rejected(scope: SessionOrConnection, row: PushState, reason: str, by: str = "the ERP") -> None:
    row.status = OrderStatus.REJECTED.value
    row.last_error = reason
    row.next_attempt_at = None
    release_holds(scope, row.order_id, "rejected")
    alert(Cause.ORDER_REJECTED, "order %s rejected by %s; stock released: %s", row.order_id, by, reason,
          extra=ids(order_id=row.order_id, attempt=row.attempts))


def _unavailable(row: PushState, error: ErpUnavailable, settings: Settings) -> list[OutgoingMessage]:
    row.last_error = str(error)
    if row.status == OrderStatus.LOCAL_ONLY:
        # Not due for a while, so that the probe's next round starts with the orders after it.
        row.next_attempt_at = row.now + timedelta(seconds=settings.order_retry_interval_s)
        # Expected while the ERP is away; the alert went out when the order turned local_only.
        logger.info("order %s still local_only, the ERP is unreachable: %s", row.order_id, error,
                    extra=ids(order_id=row.order_id, attempt=row.attempts))
        return []
    assert row.first_attempt_at is not None  # set by push_order before sending
    row.next_attempt_at = next_attempt(row.first_attempt_at, row.now, settings.order_retry_interval_s,
                                       settings.order_retry_window_s)
    if row.next_attempt_at is None:
        row.status = OrderStatus.LOCAL_ONLY.value
        # "Confirmed", not "taken": an answer lost on its way back leaves the ERP holding the order.
        alert(Cause.ORDER_LOCAL_ONLY, "order %s: no push of it confirmed by the ERP for %d s (%s); local_only, "
              "its stock stays held until one is", row.order_id, settings.order_retry_window_s, error,
              extra=ids(order_id=row.order_id, attempt=row.attempts))
        return []
    if row.status == OrderStatus.RECEIVED and not isinstance(error, ErpMisconfigured):
        # A setting the ERP refuses raised its own ALERT (erp_misconfigured), naming what to fix.
        alert(Cause.ERP_UNREACHABLE, "order %s waits as pending_sync, the ERP is unreachable: %s", row.order_id, error)
    row.status = OrderStatus.PENDING_SYNC.value
    # An expected retry (spec 7.2), not a warning: news only when the window runs out (above).
    logger.info("order %s pending_sync (attempt %d), retry in %d s: %s",
                row.order_id, row.attempts, settings.order_retry_interval_s, error,
                extra=ids(order_id=row.order_id, attempt=row.attempts))
    return [push_message(row.order_id, *order_retry_route(settings.order_retry_interval_s * 1000))]
