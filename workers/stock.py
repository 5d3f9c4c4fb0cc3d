"""The per-SKU stock rule both workers apply: newer ERP figures win, deltas count once.

`stock_levels.erp_as_of` is the ERP timestamp of the absolute figure the quantity builds on.

- An absolute figure replaces the quantity unless the row already holds a newer one. The
  comparison is the WHERE of the upsert itself, so two processes racing on one SKU cannot go
  backwards. On a tie the later-arriving figure wins: ERP timestamps may have second resolution,
  and a second figure within the same second is more likely the later one.
- A delta adds to the quantity unless it is older than the absolute figure (which then already
  contains it). A delta never moves `erp_as_of`: deltas commute, so each one counts exactly once
  whatever order they arrive in, whereas moving the mark would turn a late older delta stale.
- A delta for a SKU with no figure yet applies onto 0 and marks the row `NO_TOTAL_YET`. A brand
  new item's first goods receipt is then exact, an unknown prior stock counts as none (the
  storefront never shows stock the ERP has not reported), and the ERP's first total, however
  old, replaces the guess.

Every call leaves a `stock_changes` row saying what became of the figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, func, insert, literal, select
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.models import StockChange, StockChangeKind, StockChangeOutcome, StockLevel

# Older than any ERP timestamp: the quantity is a sum of deltas, not yet anchored on a total.
NO_TOTAL_YET = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = StockChange.__table__.c


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
    """Set the SKU's ERP figure unless a newer one is already applied; applied or stale."""
    change = _Change(sku, event_id, erp_timestamp, location_id, reason, quantity=quantity)
    upsert = pg_insert(StockLevel).values(sku=sku, erp_quantity=quantity, erp_as_of=erp_timestamp)
    upsert = upsert.on_conflict_do_update(
        index_elements=[StockLevel.sku],
        set_={
            "erp_quantity": upsert.excluded.erp_quantity,
            "erp_as_of": upsert.excluded.erp_as_of,
            "updated_at": func.now(),
        },
        where=StockLevel.erp_as_of <= upsert.excluded.erp_as_of,
    )
    return _apply(session, change, upsert)


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
    upsert = pg_insert(StockLevel).values(sku=sku, erp_quantity=delta, erp_as_of=NO_TOTAL_YET)
    upsert = upsert.on_conflict_do_update(
        index_elements=[StockLevel.sku],
        set_={"erp_quantity": StockLevel.erp_quantity + upsert.excluded.erp_quantity, "updated_at": func.now()},
        where=StockLevel.erp_as_of <= erp_timestamp,
    )
    return _apply(session, change, upsert)


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


def stock_history(session: Session, sku: str, limit: int = 100) -> list[StockChange]:
    """The SKU's received figures and what became of each, newest first."""
    query = (
        select(StockChange)
        .where(StockChange.sku == sku)
        .order_by(StockChange.recorded_at.desc(), StockChange.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def _apply(session: Session, change: _Change, upsert: Insert) -> StockChangeOutcome:
    # One round trip in the common case: the upsert and its history row in one statement.
    level = upsert.returning(StockLevel.erp_quantity).cte("level")
    history = change.history()
    columns = [*history, "resulting_quantity", "outcome"]
    row = select(
        *(literal(value, _COLUMNS[name].type) for name, value in history.items()),
        level.c.erp_quantity,
        literal(StockChangeOutcome.APPLIED.value, String),
    )
    applied = session.execute(insert(StockChange).from_select(columns, row).returning(StockChange.id)).first()
    if applied is not None:
        return StockChangeOutcome.APPLIED
    _record_unapplied(session, change, StockChangeOutcome.STALE)
    return StockChangeOutcome.STALE


def _record_unapplied(session: Session, change: _Change, outcome: StockChangeOutcome) -> None:
    # A new statement sees the figure that beat this one (the upsert left its row locked).
    current = select(StockLevel.erp_quantity).where(StockLevel.sku == change.sku).scalar_subquery()
    session.execute(
        insert(StockChange).values(**change.history(), resulting_quantity=current, outcome=outcome.value)
    )

