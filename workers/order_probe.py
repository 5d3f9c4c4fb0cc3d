"""The orders worker's background loop: ends holds past their grace period, re-sends waiting orders.

Every `ERP_PROBE_INTERVAL_S`: holds of orders the ERP acknowledged more than `HOLD_GRACE_PERIOD_S`
ago are released (the ERP's own figure should have arrived by then). Orders still `received` or
`pending_sync` untouched for `ORDER_STRANDED_AFTER_S` have lost their push message (parked after
the database failed it too often, or purged by hand): each is asked to be pushed again, ERP or
not. When local_only orders are due and the ERP answers a probe, the oldest is asked to be pushed;
each one the ERP answers then asks for the next (see `order_sync`). The row decides each push.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.workers.erp_client import ErpClient
from erp_sync.workers.hold_rule import release_expired_holds
from erp_sync.workers.order_store import oldest_local_only, touch_stranded
from erp_sync.workers.order_sync import push_message

logger = logging.getLogger(__name__)

RESEND_BATCH = 500


@dataclass(frozen=True)
class ProbeReport:
    released_holds: int
    erp_answers: bool | None  # None: no local_only order to re-send, the ERP was not asked
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

    def run(self, stop: threading.Event) -> None:
        """Run `once` every interval until `stop` is set; a failed round is logged and the next one tried."""
        while not stop.wait(self.interval_s):
            try:
                self.once()
            except Exception:
                logger.exception("ERP probe round failed; trying again in %.1f s", self.interval_s)

    def once(self, now: datetime | None = None) -> ProbeReport:
        """One round: release expired holds, re-send stranded orders, then the oldest local_only one if the ERP answers."""
        now = now or datetime.now(UTC)
        with self.session_factory() as session, session.begin():
            released = release_expired_holds(session, self.grace_period_s, now)
        if released:
            logger.info("released %d holds past their %.0f s grace period", released, self.grace_period_s)
        with self.session_factory() as session, session.begin():
            # Published before the commit, so a failed publish leaves them stranded for the next round.
            stranded = touch_stranded(session, now - timedelta(seconds=self.stranded_after_s), RESEND_BATCH)
            self.publisher.publish_all([push_message(order_id) for order_id in stranded])
        for order_id in stranded:
            logger.info("order %s re-sent to the orders worker: its push message is lost", order_id)
        with self.session_factory() as session:
            local_only = oldest_local_only(session)
        if local_only is None:
            return ProbeReport(released, None, (), tuple(stranded))
        if not self.client.probe():
            logger.info("local_only orders wait, from %s on; the ERP does not answer yet", local_only)
            return ProbeReport(released, False, (), tuple(stranded))
        self.publisher.publish(push_message(local_only))
        logger.info("order %s re-sent to the orders worker: the ERP answers again", local_only)
        return ProbeReport(released, True, (local_only,), tuple(stranded))
