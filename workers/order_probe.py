"""The orders worker's background loop: ends holds past their grace period, re-sends waiting orders.

Every `ERP_PROBE_INTERVAL_S`: holds of orders the ERP acknowledged more than `HOLD_GRACE_PERIOD_S`
ago are released (the ERP's own figure should have arrived by then). Orders still `received` or
`pending_sync` untouched for `ORDER_STRANDED_AFTER_S` have lost their push message (parked after
the database failed it too often, or purged by hand): each is asked to be pushed again, ERP or
not. When a local_only order is due and the ERP answers a probe, one is asked to be pushed (the
oldest not tried since it turned local_only, else the one overdue longest); each one settled then
asks for the next (see `order_sync`). The ERP is asked before any order is claimed, and
one query then claims both kinds (`order_store.claim`); the row decides each push.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.db import translate_db_error
from erp_sync.shared.errors import TransientError
from erp_sync.shared.models.states import OrderStatus
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.workers.erp_client import ErpClient
from erp_sync.workers.hold_rule import release_expired_holds
from erp_sync.workers.order_store import claim, next_local_only
from erp_sync.workers.order_sync import push_message

logger = logging.getLogger(__name__)

RESEND_BATCH = 500


@dataclass(frozen=True)
class ProbeReport:
    released_holds: int
    # None: the ERP was not asked (no local_only order was due, or the worker is stopping). True
    # with nothing resent: the order due was being pushed meanwhile (its row locked), or was settled.
    erp_answers: bool | None
    resent: tuple[str, ...]
    stranded: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderProbe:
    """One loop per orders worker process."""

    client: ErpClient
    session_factory: sessionmaker[Session]
    publisher: ConfirmingPublisher
    _: KW_ONLY
    interval_s: float
    grace_period_s: float
    stranded_after_s: float
    erp_names_orders: bool = False  # then a hold that outlives its grace period was never named: a WARNING

    def run(self, stop: threading.Event) -> None:
        """Run `once` every interval until `stop` is set; a failed round is logged and the next one tried.

        A probe of the ERP under way when `stop` is set ends at once: the worker's stop waits for this loop.
        """
        threading.Thread(target=self._stop_probing_on, args=(stop,), name="orders-probe-stop", daemon=True).start()
        while not stop.wait(self.interval_s):
            try:
                self.once()
            except (SQLAlchemyError, TransientError) as exc:
                # An outage (the database, the broker, the ERP): expected, so one line each round.
                reason = translate_db_error(exc) if isinstance(exc, SQLAlchemyError) else exc
                logger.warning("ERP probe round failed (%s); trying again in %.1f s", reason, self.interval_s)
            except Exception:
                logger.exception("ERP probe round failed; trying again in %.1f s", self.interval_s)

    def _stop_probing_on(self, stop: threading.Event) -> None:
        stop.wait()
        self.client.stop_probing()

    def once(self, now: datetime | None = None) -> ProbeReport:
        """One round: release expired holds, re-send stranded orders, and a local_only one if the ERP answers."""
        now = now or datetime.now(UTC)
        with self.session_factory() as session, session.begin():
            released = release_expired_holds(session, self.grace_period_s, now)
        if released and self.erp_names_orders:
            logger.warning("released %d holds past their %.0f s grace period: no ERP figure named their orders "
                           "(ERP_NAMES_ORDERS is set)", released, self.grace_period_s)
        elif released:
            logger.info("released %d holds past their %.0f s grace period", released, self.grace_period_s)
        # The ERP is asked before any row is locked: its snapshot may take a minute to begin, and
        # meanwhile the order's own push or an operator's `orders retry` must not wait on the probe.
        with self.session_factory() as session:
            next_due = next_local_only(session)
        erp_answers = self.client.probe() if next_due else None
        if next_due and erp_answers is False:
            logger.info("order %s and the local_only orders after it wait for a probe of the ERP to succeed",
                        next_due)
        with self.session_factory() as session, session.begin():
            claimed = claim(session, now - timedelta(seconds=self.stranded_after_s), local_only=bool(erp_answers),
                            limit=RESEND_BATCH)
            stranded = tuple(order_id for order_id, status in claimed if status != OrderStatus.LOCAL_ONLY)
            resent = tuple(order_id for order_id, status in claimed if status == OrderStatus.LOCAL_ONLY)
            # Published before the commit: a failed publish leaves the orders to the next round.
            self.publisher.publish_all([push_message(order_id) for order_id in stranded + resent])
        for order_id in stranded:
            logger.info("order %s re-sent to the orders worker: its push message is lost", order_id)
        for order_id in resent:
            logger.info("order %s re-sent to the orders worker: the ERP answers again", order_id)
        return ProbeReport(released, erp_answers, resent, stranded)
