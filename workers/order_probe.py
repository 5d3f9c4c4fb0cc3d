"""The orders worker's background loop: ends holds past their grace period, re-sends waiting orders.

Every `ERP_PROBE_INTERVAL_S`: holds of orders the ERP acknowledged more than `HOLD_GRACE_PERIOD_S`
ago are released (the ERP's own figure should have arrived by then); when local_only orders
exist and the ERP answers a probe, they are put on the orders worker's push queue oldest first,
where they are pushed one after another. Orders still `received` or `pending_sync` with nothing
done to them for `ORDER_STRANDED_AFTER_S` have lost their push message (parked after the
database failed it too often, or purged by hand): they are re-sent the same way, ERP or not,
so that they go on through the usual states instead of holding their stock for good.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session, selectinload, sessionmaker

from erp_sync.workers.erp_client import ErpClient
from erp_sync.shared.models.orders import Order, OrderStatus, StockHold
from erp_sync.shared.orders import LineItem, OrderPlaced, order_message
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.topology import order_resend_route
from erp_sync.workers.order_sync import RESEND_HEADER, STRANDED_HEADER

logger = logging.getLogger(__name__)

RESEND_BATCH = 500


@dataclass(frozen=True)
class ProbeReport:
    released_holds: int
    erp_answers: bool | None  # None: no local_only order to re-send, the ERP was not asked
    resent: tuple[str, ...]
    stranded: tuple[str, ...] = ()


def order_from_row(row: Order) -> OrderPlaced:
    """The order message rebuilt from what was recorded."""
    return OrderPlaced(
        order_id=row.order_id, order_date=row.order_date, customer_ref=row.customer_ref,
        warehouse_id=row.warehouse_id,
        line_items=[LineItem(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in row.lines],
    )


def release_expired_holds(session: Session, grace_period_s: float, now: datetime) -> int:
    """Release the open holds of orders the ERP acknowledged more than the grace period ago."""
    acknowledged_long_ago = select(Order.order_id).where(
        Order.synced_at.is_not(None), Order.synced_at < now - timedelta(seconds=grace_period_s)
    )
    result = session.execute(
        update(StockHold)
        .where(StockHold.released_at.is_(None), StockHold.order_id.in_(acknowledged_long_ago))
        .values(released_at=now, release_reason="grace_period")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


class OrderProbe:
    """One loop per orders worker process."""

    def __init__(
        self, client: ErpClient, session_factory: sessionmaker[Session], publisher: ConfirmingPublisher,
        *, interval_s: float, grace_period_s: float, stranded_after_s: float,
    ) -> None:
        self._client = client
        self._session_factory = session_factory
        self._publisher = publisher
        self._interval_s = interval_s
        self._grace_period_s = grace_period_s
        self._stranded_after_s = stranded_after_s

    def run(self, stop: threading.Event) -> None:
        """Run `once` every interval until `stop` is set; a failed round is logged and the next one tried."""
        while not stop.wait(self._interval_s):
            try:
                self.once()
            except Exception:
                logger.exception("ERP probe round failed; trying again in %.1f s", self._interval_s)

    def once(self, now: datetime | None = None) -> ProbeReport:
        """One round: release expired holds, re-send stranded orders, then local_only ones if the ERP answers."""
        now = now or datetime.now(UTC)
        with self._session_factory() as session, session.begin():
            released = release_expired_holds(session, self._grace_period_s, now)
        if released:
            logger.info("released %d holds past their %.0f s grace period", released, self._grace_period_s)
        stranded = self._resend(
            (Order.status.in_((OrderStatus.RECEIVED.value, OrderStatus.PENDING_SYNC.value)),
             Order.updated_at < now - timedelta(seconds=self._stranded_after_s)),
            now, "its push message is lost", {STRANDED_HEADER: 1})
        with self._session_factory() as session:
            local_only = session.scalar(select(Order.order_id).where(*self._local_only_due(now)).limit(1))
        if local_only is None:
            return ProbeReport(released, None, (), stranded)
        if not self._client.probe():
            logger.info("local_only orders wait, from %s on; the ERP does not answer yet", local_only)
            return ProbeReport(released, False, (), stranded)
        resent = self._resend(self._local_only_due(now), now, "the ERP answers again")
        return ProbeReport(released, True, resent, stranded)

    @staticmethod
    def _local_only_due(now: datetime) -> tuple[ColumnElement[bool], ...]:
        return (Order.status == OrderStatus.LOCAL_ONLY.value,
                Order.next_attempt_at.is_(None) | (Order.next_attempt_at <= now))

    def _resend(self, where: tuple[ColumnElement[bool], ...], now: datetime, why: str,
                marks: dict[str, int] | None = None) -> tuple[str, ...]:
        """Put the oldest orders matching `where` on the push queue, to be pushed one after another."""
        with self._session_factory() as session, session.begin():
            rows = list(session.scalars(
                select(Order).where(*where).order_by(Order.arrival).limit(RESEND_BATCH)
                .with_for_update(skip_locked=True).options(selectinload(Order.lines))
            ))
            exchange, routing_key = order_resend_route()
            self._publisher.publish_all(
                [order_message(order_from_row(row), exchange, routing_key, {RESEND_HEADER: row.attempts, **(marks or {})})
                 for row in rows])
            for row in rows:
                # Not re-sent again before the handler had a chance to push it (this also stamps updated_at).
                row.next_attempt_at = now + timedelta(seconds=self._interval_s)
                logger.info("order %s re-sent to the orders worker: %s", row.order_id, why)
        return tuple(row.order_id for row in rows)
