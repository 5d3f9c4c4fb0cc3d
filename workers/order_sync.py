"""Recording an order with its stock holds, and pushing it to the ERP with the spec 7.2 fallbacks.

    received ──push ok / 409──▶ synced
             ──4xx──────────▶ rejected (holds released at once, alert)
             ──unreachable──▶ pending_sync ──every ORDER_RETRY_INTERVAL_S──▶ push again
                              └── ORDER_RETRY_WINDOW_S after the first attempt ──▶ local_only
    local_only ──the ERP probe re-sends it──▶ push again (stays local_only if that fails)
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from shared.erp_client import ErpClient, PushResult
from shared.errors import ErpRejected, ErpUnavailable
from shared.models.orders import Order, OrderStatus, StockHold
from shared.orders import OrderPlaced
from shared.publisher import OutgoingMessage
from shared.topology import order_retry_route

logger = logging.getLogger(__name__)

# Set on the orders worker's own retry messages: they continue a retry chain, a duplicate does not.
RETRY_HEADER = "x-erp-sync-order-retry"
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


# Plain SQL: SQLAlchemy 2.0 cannot cache a compiled ON CONFLICT (sqlalchemy#10445), and the
# ORM's bulk insert path costs more than the round trips it saves on an order's few lines.
_INSERT_ORDER = text("""
INSERT INTO orders (order_id, order_date, customer_ref, warehouse_id, status)
VALUES (:order_id, :order_date, :customer_ref, :warehouse_id, 'received')
ON CONFLICT (order_id) DO NOTHING
RETURNING order_id
""")
_INSERT_LINE = text("""
INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price)
VALUES (:order_id, :line_no, :sku, :quantity, :unit_price)
""")
_INSERT_HOLD = text("INSERT INTO stock_holds (order_id, sku, quantity) VALUES (:order_id, :sku, :quantity)")


def record_order(session: Session, order: OrderPlaced) -> Order | None:
    """Insert a new order with its lines and holds and return None; or return the existing row, locked.

    The insert waits on a concurrent one for the same order id, so two workers handling duplicates
    never both push: the second sees the first one's outcome once it committed.
    """
    inserted = session.execute(_INSERT_ORDER, {
        "order_id": order.order_id, "order_date": order.order_date, "customer_ref": order.customer_ref,
        "warehouse_id": order.warehouse_id,
    }).scalar_one_or_none()
    if inserted is not None:
        lines = [{"order_id": order.order_id, "line_no": number, "sku": line.sku, "quantity": line.quantity,
                  "unit_price": line.unit_price} for number, line in enumerate(order.line_items, start=1)]
        session.execute(_INSERT_LINE, lines)
        session.execute(_INSERT_HOLD, [{k: line[k] for k in ("order_id", "sku", "quantity")} for line in lines])
        return None
    return load_locked(session, order.order_id)


def load_locked(session: Session, order_id: str) -> Order:
    """The order's row, locked for this transaction and read afresh."""
    return session.execute(
        select(Order).where(Order.order_id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()


def needs_push(row: Order, *, is_retry: bool, now: datetime) -> bool:
    """Whether this message should push the order now; duplicates of settled orders do nothing."""
    if row.status in DONE:
        return False
    if row.status == OrderStatus.PENDING_SYNC and not is_retry and row.next_attempt_at is not None:
        # A retry is already on its way through the delay queue; a duplicate must not start another chain.
        return row.next_attempt_at <= now
    return True


def push_order(
    session: Session,
    row: Order,
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
    try:
        result = _send(client, order, policy)
    except ErpRejected as exc:
        _reject(session, row, f"ERP refused the order ({exc.status}): {exc.body}")
        return []
    except ErpUnavailable as exc:
        return _unavailable(row, exc, policy, body, now())
    _synced(row, result)
    return []


def _send(client: ErpClient, order: OrderPlaced, policy: PushPolicy) -> PushResult:
    if policy.mode == "adjust":
        return client.adjust_inventory(order, policy.warehouse_id)
    return client.import_order(order)


def _synced(row: Order, result: PushResult) -> None:
    row.status = OrderStatus.SYNCED.value
    # The moment the ERP's answer arrived bounds its acknowledgement from above, so a stock figure
    # stamped later certainly includes the order: holds wait for one (see migration 0002).
    row.synced_at = result.acknowledged_at
    row.next_attempt_at = None
    row.last_error = None
    logger.info("order %s synced (attempt %d%s)", row.order_id, row.attempts,
                ", the ERP already had it" if result.already_imported else "")


def _reject(session: Session, row: Order, reason: str) -> None:
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
    row: Order, error: ErpUnavailable, policy: PushPolicy, body: bytes, now: datetime
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
