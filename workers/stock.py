"""The per-SKU stock rule both workers apply: newer ERP figures win, deltas count once.

`stock_levels.erp_as_of` is the ERP timestamp of the absolute figure the quantity builds on.

- An absolute figure stamped T replaces the quantity unless the row already holds a newer one,
  and the deltas already applied that are stamped at or after T are added back onto it: the
  total cannot contain them, so a total that arrives late never wipes out a later sale. On a tie
  the later-arriving figure wins: ERP timestamps may have second resolution, and a second figure
  within the same second is more likely the later one.
- A delta adds to the quantity unless it is older than the absolute figure (which then already
  contains it). A delta never moves `erp_as_of`: deltas commute, so each one counts exactly once
  whatever order they arrive in, whereas moving the mark would turn a late older delta stale.
- A delta for a SKU with no figure yet applies onto 0 and marks the row `NO_TOTAL_YET`. A brand
  new item's first goods receipt is then exact, an unknown prior stock counts as none (the
  storefront never shows stock the ERP has not reported), and the ERP's first total, however
  old, replaces the guess (keeping the deltas stamped after it).

An absolute figure first takes the SKU's row lock, so that the deltas it adds back are all the
ones committed: a delta racing it either committed before (and is read) or waits for it (and
then adds onto the new figure). Every call leaves a `stock_changes` row saying what became of
the figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import TextClause, insert, select, text
from sqlalchemy.orm import Session

from erp_sync.shared.models import StockChange, StockChangeKind, StockChangeOutcome, StockLevel

# Older than any ERP timestamp: the quantity is a sum of deltas, not yet anchored on a total.
NO_TOTAL_YET = datetime(1970, 1, 1, tzinfo=UTC)

# Written as SQL because SQLAlchemy 2.0 cannot cache a compiled PostgreSQL ON CONFLICT
# (sqlalchemy#10445): compiling it anew for every event would cost more than its round trip.
# The upsert and the history row of an applied figure share one statement, one round trip.
_RECORD_APPLIED = """
INSERT INTO stock_changes
    (sku, event_id, kind, quantity, delta, resulting_quantity, location_id, reason, erp_timestamp, outcome)
SELECT :sku, :event_id, :kind, CAST(:quantity AS integer), CAST(:delta AS integer), level.erp_quantity,
       CAST(:location_id AS varchar), CAST(:reason AS varchar), :erp_timestamp, 'applied'
FROM level
RETURNING id
"""
# Locks the SKU's row, creating it as an empty NO_TOTAL_YET one if there is none: a conflicting
# ON CONFLICT DO UPDATE locks the row even where its WHERE leaves it unchanged.
_LOCK_LEVEL = text("""
INSERT INTO stock_levels (sku, erp_quantity, erp_as_of) VALUES (:sku, 0, :no_total_yet)
ON CONFLICT (sku) DO UPDATE SET erp_quantity = stock_levels.erp_quantity WHERE false
""")
# A statement after the lock: it sees every delta committed for the SKU.
_APPLY_ABSOLUTE = text("""
WITH level AS (
    UPDATE stock_levels
    SET erp_quantity = :quantity + (
            SELECT COALESCE(sum(delta), 0) FROM stock_changes
            WHERE sku = :sku AND kind = 'delta' AND outcome = 'applied' AND erp_timestamp >= :erp_timestamp),
        erp_as_of = :erp_timestamp, updated_at = now()
    WHERE sku = :sku AND erp_as_of <= :erp_timestamp
    RETURNING erp_quantity
)""" + _RECORD_APPLIED)
_APPLY_DELTA = text("""
WITH level AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of) VALUES (:sku, :delta, :no_total_yet)
    ON CONFLICT (sku) DO UPDATE
    SET erp_quantity = stock_levels.erp_quantity + excluded.erp_quantity, updated_at = now()
    WHERE stock_levels.erp_as_of <= :erp_timestamp
    RETURNING erp_quantity
)""" + _RECORD_APPLIED)


@dataclass(frozen=True)
class _Change:
    sku: str
    event_id: str
    erp_timestamp: datetime
    location_id: str | None
    reason: str | None
    quantity: int | None = None
    delta: int | None = None

    def history(self) -> dict[str, Any]:
        kind = StockChangeKind.ABSOLUTE if self.quantity is not None else StockChangeKind.DELTA
        return {
            "sku": self.sku,
            "event_id": self.event_id,
            "kind": kind.value,
            "quantity": self.quantity,
            "delta": self.delta,
            "location_id": self.location_id,
            "reason": self.reason,
            "erp_timestamp": self.erp_timestamp,
        }


def apply_absolute(
    session: Session,
    *,
    sku: str,
    quantity: int,
    erp_timestamp: datetime,
    event_id: str,
    location_id: str | None = None,
    reason: str | None = None,
) -> StockChangeOutcome:
    """Set the SKU's ERP figure, plus the deltas stamped since, unless a newer one is applied; applied or stale."""
    change = _Change(sku, event_id, erp_timestamp, location_id, reason, quantity=quantity)
    session.execute(_LOCK_LEVEL, {"sku": sku, "no_total_yet": NO_TOTAL_YET})
    return _apply(session, change, _APPLY_ABSOLUTE, {})


def apply_delta(
    session: Session,
    *,
    sku: str,
    delta: int,
    erp_timestamp: datetime,
    event_id: str,
    location_id: str | None = None,
    reason: str | None = None,
) -> StockChangeOutcome:
    """Add a difference to the SKU's figure unless a newer total already holds it; applied or stale."""
    change = _Change(sku, event_id, erp_timestamp, location_id, reason, delta=delta)
    return _apply(session, change, _APPLY_DELTA, {"no_total_yet": NO_TOTAL_YET})


def record_duplicate(
    session: Session,
    *,
    sku: str,
    erp_timestamp: datetime,
    event_id: str,
    quantity: int | None = None,
    delta: int | None = None,
    location_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Note in the history that an event seen before came again; the figure stays as it is."""
    change = _Change(sku, event_id, erp_timestamp, location_id, reason, quantity=quantity, delta=delta)
    _record_unapplied(session, change, StockChangeOutcome.DUPLICATE)


def _apply(session: Session, change: _Change, statement: TextClause, extra: dict[str, Any]) -> StockChangeOutcome:
    if session.execute(statement, {**change.history(), **extra}).first() is not None:
        return StockChangeOutcome.APPLIED
    _record_unapplied(session, change, StockChangeOutcome.STALE)
    return StockChangeOutcome.STALE


def _record_unapplied(session: Session, change: _Change, outcome: StockChangeOutcome) -> None:
    # A new statement sees the figure that beat this one (the upsert left its row locked).
    current = select(StockLevel.erp_quantity).where(StockLevel.sku == change.sku).scalar_subquery()
    session.execute(
        insert(StockChange).values(**change.history(), resulting_quantity=current, outcome=outcome.value)
    )

