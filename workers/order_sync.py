"""Recording an order with its stock holds, and pushing it to the ERP with the spec 7.2 fallbacks.

    received ──push ok / 409──▶ synced
             ──4xx──────────▶ rejected (holds released at once, alert)
             ──unreachable──▶ pending_sync ──every ORDER_RETRY_INTERVAL_S──▶ push again
                              └── ORDER_RETRY_WINDOW_S after the first attempt ──▶ local_only
    local_only ──the ERP probe re-sends it──▶ push again (stays local_only if that fails)
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from erp_sync.workers.erp_client import ErpClient, PushResult
from erp_sync.shared.errors import ErpRejected, ErpUnavailable
from erp_sync.shared.models.orders import OrderStatus, StockHold
from erp_sync.shared.orders import OrderPlaced
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.topology import order_retry_route

logger = logging.getLogger(__name__)

# Set on the orders worker's own retry messages: they continue a retry chain, a duplicate does not.
RETRY_HEADER = "x-erp-sync-order-retry"
# Set on every ERP probe's re-send (of local_only and of stranded orders), to the order's attempts
# when re-sent: the worker pushes re-sends in turn, oldest first.
RESEND_HEADER = "x-erp-sync-order-resend"
# Set beside it on the re-send of a stranded order: such a re-send overtaken by a push is stale,
# and one left unpushed goes back to the queue (the probe would not re-send it for hours).
STRANDED_HEADER = "x-erp-sync-order-stranded"
MAX_ERROR_CHARS = 2000
DONE = frozenset({OrderStatus.SYNCED.value, OrderStatus.REJECTED.value})


@dataclass(frozen=True)
class PushPolicy:
    """How orders go to the ERP (Option A or B) and how long the worker keeps retrying."""

    mode: Literal["orders", "adjust"]
    warehouse_id: str
    retry_interval_s: int
    retry_window_s: int

    @property
    def retry_interval_ms(self) -> int:
        return self.retry_interval_s * 1000


# Plain SQL over arrays: one statement per table whatever the batch's size. SQLAlchemy 2.0 cannot
# cache a compiled ON CONFLICT (sqlalchemy#10445), and the ORM's bulk path costs more than it saves.
_INSERT_ORDERS = text("""
INSERT INTO orders (order_id, order_date, customer_ref, warehouse_id, status)
SELECT o.order_id, o.order_date, o.customer_ref, o.warehouse_id, 'received'
  FROM unnest(CAST(:order_ids AS text[]), CAST(:order_dates AS timestamptz[]),
              CAST(:customer_refs AS text[]), CAST(:warehouse_ids AS text[]))
       WITH ORDINALITY AS o(order_id, order_date, customer_ref, warehouse_id, position)
 ORDER BY o.position
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
""")
_INSERT_LINES = text("""
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)
SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:line_nos AS integer[]), CAST(:skus AS text[]),
                     CAST(:quantities AS integer[]), CAST(:unit_prices AS numeric[]))
""")
_INSERT_HOLDS = text("""
INSERT INTO stock_holds (order_id, sku, quantity)
SELECT * FROM unnest(CAST(:order_ids AS text[]), CAST(:skus AS text[]), CAST(:quantities AS integer[]))
""")


def record_orders(session: Session, orders: Sequence[OrderPlaced]) -> set[str]:
    """Insert the orders not recorded yet, in their order of arrival, with their lines and holds.

    Returns the ids inserted; an order already there is left as it is. Two workers recording the
    same duplicates in opposite orders could deadlock: PostgreSQL then fails one batch, and the
    consumer records that batch message by message.
    """
    by_id: dict[str, OrderPlaced] = {}
    for order in orders:
        by_id.setdefault(order.order_id, order)  # a duplicate within the batch is the same order
    first_of_each = list(by_id.values())
    inserted = set(session.execute(_INSERT_ORDERS, {
        "order_ids": [order.order_id for order in first_of_each],
        "order_dates": [order.order_date for order in first_of_each],
        "customer_refs": [order.customer_ref for order in first_of_each],
        "warehouse_ids": [order.warehouse_id for order in first_of_each],
    }).scalars())
    lines = [(order.order_id, number, line) for order in first_of_each if order.order_id in inserted
             for number, line in enumerate(order.line_items, start=1)]
    if lines:
        columns = {"order_ids": [order_id for order_id, _, _ in lines], "skus": [line.sku for _, _, line in lines],
                   "quantities": [line.quantity for _, _, line in lines]}
        session.execute(_INSERT_LINES, columns | {"line_nos": [number for _, number, _ in lines],
                                                  "unit_prices": [line.unit_price for _, _, line in lines]})
        session.execute(_INSERT_HOLDS, columns)
    return inserted


@dataclass
class PushState:
    """The columns of an order's row that a push reads and writes."""

    order_id: str
    status: str
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    synced_at: datetime | None
    last_error: str | None


# Plain SQL, read into a dataclass and written back in one UPDATE: the ORM's identity map and
# unit of work took a third of a push's CPU, for one row read and written once.
_LOAD_LOCKED = text("""
SELECT order_id, status, attempts, first_attempt_at, next_attempt_at, synced_at, last_error
  FROM orders WHERE order_id = :order_id FOR UPDATE
""")
_SAVE = text("""
UPDATE orders
   SET status = :status, attempts = :attempts, first_attempt_at = :first_attempt_at,
       next_attempt_at = :next_attempt_at, synced_at = :synced_at, last_error = :last_error, updated_at = now()
 WHERE order_id = :order_id
""")


def load_locked(session: Session, order_id: str) -> PushState:
    """The order's row, locked for this transaction.

    Raises:
        sqlalchemy.exc.NoResultFound: no order has that id.
    """
    return PushState(*session.execute(_LOAD_LOCKED, {"order_id": order_id}).one())


def save(session: Session, row: PushState) -> None:
    """Write the push's outcome back to the order's row."""
    session.execute(_SAVE, asdict(row))


def needs_push(row: PushState, *, is_retry: bool, now: datetime) -> bool:
    """Whether this message should push the order now; duplicates of settled orders do nothing."""
    if row.status in DONE:
        return False
    if row.status == OrderStatus.PENDING_SYNC and not is_retry and row.next_attempt_at is not None:
        # A retry is already on its way through the delay queue; a duplicate must not start another chain.
        return row.next_attempt_at <= now
    return True


def push_order(
    session: Session,
    row: PushState,
    order: OrderPlaced,
    client: ErpClient,
    policy: PushPolicy,
    body: bytes,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[OutgoingMessage]:
    """Push one recorded order and record the outcome on its row; returns its retry message, if any.

    Never raises for the ERP's answers: they are the order's state, not a failure of the message.
    """
    started = now()
    row.attempts += 1
    if row.first_attempt_at is None:
        row.first_attempt_at = started
    follow_ups: list[OutgoingMessage] = []
    try:
        result = _send(client, order, policy)
    except ErpRejected as exc:
        _reject(session, row, f"ERP refused the order ({exc.status}): {exc.body}")
    except ErpUnavailable as exc:
        follow_ups = _unavailable(row, exc, policy, body, now())
    else:
        _synced(row, result)
    save(session, row)
    return follow_ups


def _send(client: ErpClient, order: OrderPlaced, policy: PushPolicy) -> PushResult:
    if policy.mode == "adjust":
        return client.adjust_inventory(order, policy.warehouse_id)
    return client.import_order(order)


def _synced(row: PushState, result: PushResult) -> None:
    row.status = OrderStatus.SYNCED.value
    # The moment the ERP's answer arrived bounds its acknowledgement from above, so a stock figure
    # stamped later certainly includes the order: holds wait for one (see migration 0002).
    row.synced_at = result.acknowledged_at
    row.next_attempt_at = None
    row.last_error = None
    logger.info("order %s synced (attempt %d%s)", row.order_id, row.attempts,
                ", the ERP already had it" if result.already_imported else "")


def _reject(session: Session, row: PushState, reason: str) -> None:
    row.status = OrderStatus.REJECTED.value
    row.last_error = reason[:MAX_ERROR_CHARS]
    row.next_attempt_at = None
    release_holds(session, row.order_id, "rejected")
    logger.error("ALERT order %s rejected by the ERP; stock released: %s", row.order_id, reason)


def release_holds(session: Session, order_id: str, reason: str) -> None:
    """End every open hold of the order now."""
    session.execute(
        update(StockHold)
        .where(StockHold.order_id == order_id, StockHold.released_at.is_(None))
        .values(released_at=datetime.now(UTC), release_reason=reason)
    )


def _unavailable(
    row: PushState, error: ErpUnavailable, policy: PushPolicy, body: bytes, now: datetime
) -> list[OutgoingMessage]:
    row.last_error = str(error)[:MAX_ERROR_CHARS]
    if row.status == OrderStatus.LOCAL_ONLY:
        logger.warning("order %s still local_only, the ERP is unreachable: %s", row.order_id, error)
        return []
    assert row.first_attempt_at is not None  # set by push_order before sending
    if now - row.first_attempt_at >= timedelta(seconds=policy.retry_window_s):
        row.status = OrderStatus.LOCAL_ONLY.value
        row.next_attempt_at = None
        logger.error("order %s: ERP unreachable for %d s; local_only, its stock stays held until the ERP is back",
                     row.order_id, policy.retry_window_s)
        return []
    row.status = OrderStatus.PENDING_SYNC.value
    row.next_attempt_at = now + timedelta(seconds=policy.retry_interval_s)
    logger.warning("order %s pending_sync (attempt %d), retry in %d s: %s",
                   row.order_id, row.attempts, policy.retry_interval_s, error)
    exchange, routing_key = order_retry_route(policy.retry_interval_ms)
    return [OutgoingMessage(exchange, routing_key, body, row.order_id, "application/json",
                            {RETRY_HEADER: row.attempts})]
