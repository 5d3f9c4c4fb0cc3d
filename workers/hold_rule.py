"""When the ERP received an order, on the ERP's clock: the mark a stock figure must reach to end its holds.

The ERP deducts an order before it answers and stamps its figure at the deduction, so a figure
stamped at or after the order's receipt includes it. The mark is the earliest ERP time the push's
answer allows for that receipt (`ErpClock.at_receipt`, workers/erp_clock.py), rounded down to the
second so a whole-second ERP clock still reaches it. The release itself is `release_counted_holds`
(migrations 0010, 0013 and 0016), the one home of the comparison.

An ERP may also name the order in the `inventory.change` of its deduction (`reference_id`, an
optional extension, docs/erp-teams.md): that figure counts the order whatever the clocks say, so
it ends that order's hold of that SKU at once (`release_named_holds`), and only that one. Told
that the ERP names every order (`ERP_NAMES_ORDERS`), the orders worker records no mark, and only
that figure ends a synced order's holds. A rejected order's holds end at once, and a synced order's
`HOLD_GRACE_PERIOD_S` after the answer.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp_sync.shared.db import SessionOrConnection

_RELEASE_ALL = text("""
UPDATE stock_holds SET released_at = clock_timestamp(), release_reason = :reason
 WHERE order_id = :order_id AND released_at IS NULL
""")
_RELEASE_EXPIRED = text("""
UPDATE stock_holds SET released_at = :now, release_reason = 'grace_period'
 WHERE released_at IS NULL
   AND order_id IN (SELECT order_id FROM orders WHERE synced_at < :now - :grace_period)
""")
_RELEASE_NAMED = text("""
UPDATE stock_holds AS h SET released_at = clock_timestamp(), release_reason = 'erp_figure'
  FROM unnest(CAST(:order_ids AS text[]), CAST(:skus AS text[])) AS named (order_id, sku)
 WHERE h.order_id = named.order_id AND h.sku = named.sku AND h.released_at IS NULL
""")


def release_named_holds(session: Session, named: Iterable[tuple[str, str]]) -> None:
    """End the open holds of these (order id, SKU) pairs: the ERP's figure of the SKU names the order."""
    pairs = sorted(set(named))
    if pairs:
        session.execute(_RELEASE_NAMED, {"order_ids": [order_id for order_id, _ in pairs],
                                         "skus": [sku for _, sku in pairs]})


def release_holds(scope: SessionOrConnection, order_id: str, reason: str) -> None:
    """End every open hold of the order now (the ERP refused it)."""
    scope.execute(_RELEASE_ALL, {"order_id": order_id, "reason": reason})


def release_expired_holds(session: Session, grace_period_s: float, now: datetime) -> int:
    """End the open holds of orders the ERP acknowledged more than the grace period ago; how many."""
    result = session.execute(_RELEASE_EXPIRED, {"now": now, "grace_period": timedelta(seconds=grace_period_s)})
    return int(getattr(result, "rowcount", 0) or 0)
