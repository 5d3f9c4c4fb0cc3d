"""The stock rule of workers/stock.py applied to a whole batch of inventory events, set-based.

`apply_inventory_batch` ends exactly where `apply_inventory_change` over the same events, one by
one in order, would: the same figures, the same history rows in the same order, the same
idempotency records. It takes five statements however long the batch (four without a new total):

1. record the batch's event ids at once; an id recorded before, or earlier in the batch, makes
   its event a duplicate;
2. lock the batch's SKUs in sku order (every worker locks in that order, so two workers wait
   for each other rather than deadlock) and read their figures;
3. for the SKUs that get a new total, read the applied deltas it must add back (those stamped
   at or after the earliest such total): after the lock, so all committed ones;
4. resolve each SKU's events in arrival order in Python, by the rules workers/stock.py states;
5. upsert each changed SKU's final figure, and insert every event's history row.

The hold-release trigger on stock_levels then sees each SKU's newest figure once rather than every
figure on the way; as figures only move forward, it releases the same holds.

A SKU without a row in step 2 has nothing to lock. Should another transaction create its row
meanwhile, our final figure (built on none) would overwrite that one's, so the upsert leaves such
a row alone and the batch fails as transient; the consumer then applies its events one by one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp_sync.shared.erp_events import InventoryChange
from erp_sync.shared.errors import DatabaseUnavailable
from erp_sync.shared.models import StockChangeKind, StockChangeOutcome
from erp_sync.workers.stock import NO_TOTAL_YET

logger = logging.getLogger(__name__)

APPLIED, STALE, DUPLICATE = StockChangeOutcome.APPLIED, StockChangeOutcome.STALE, StockChangeOutcome.DUPLICATE

# Plain SQL over arrays: one statement text whatever the batch size, so PostgreSQL and
# SQLAlchemy both reuse it (and SQLAlchemy cannot cache an ON CONFLICT, sqlalchemy#10445).
_RECORD_EVENTS = text("""
INSERT INTO processed_events (event_id, event_type)
SELECT unnest(CAST(:event_ids AS varchar[])), :event_type
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
""")
# Joined to the wanted SKUs rather than `WHERE sku = ANY(...)`, which the planner answers with a
# sequential scan of a table whose rows all churn (five times slower, measured at 2,000 SKUs).
_LOCK_LEVELS = text("""
SELECT level.sku, level.erp_quantity, level.erp_as_of
FROM unnest(CAST(:skus AS varchar[])) AS wanted (sku) JOIN stock_levels AS level ON level.sku = wanted.sku
ORDER BY level.sku
FOR UPDATE OF level
""")
_LATER_DELTAS = text("""
SELECT change.sku, change.erp_timestamp, change.delta
FROM unnest(CAST(:skus AS varchar[]), CAST(:since AS timestamptz[])) AS wanted (sku, since)
JOIN stock_changes AS change ON change.sku = wanted.sku AND change.erp_timestamp >= wanted.since
WHERE change.kind = 'delta' AND change.outcome = 'applied'
""")
# Two upserts in one statement, as the single-event ones differ: a new figure sets erp_as_of, a sum
# of deltas leaves it out of the SET (an update OF erp_as_of fires the trigger releasing stock
# holds). Both keep the single-event guard and refuse to update a row we found missing.
_WRITE_LEVELS = text("""
WITH level AS (
    SELECT * FROM unnest(CAST(:skus AS varchar[]), CAST(:quantities AS integer[]),
                         CAST(:as_of AS timestamptz[]), CAST(:new_figure AS boolean[]))
        AS level (sku, erp_quantity, erp_as_of, new_figure)
), figure AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of)
    SELECT sku, erp_quantity, erp_as_of FROM level WHERE new_figure
    ON CONFLICT (sku) DO UPDATE
    SET erp_quantity = excluded.erp_quantity, erp_as_of = excluded.erp_as_of, updated_at = now()
    WHERE stock_levels.erp_as_of <= excluded.erp_as_of AND stock_levels.sku <> ALL(CAST(:missing AS varchar[]))
    RETURNING sku
), deltas AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of)
    SELECT sku, erp_quantity, erp_as_of FROM level WHERE NOT new_figure
    ON CONFLICT (sku) DO UPDATE
    SET erp_quantity = excluded.erp_quantity, updated_at = now()
    WHERE stock_levels.erp_as_of <= excluded.erp_as_of AND stock_levels.sku <> ALL(CAST(:missing AS varchar[]))
    RETURNING sku
)
SELECT sku FROM figure UNION ALL SELECT sku FROM deltas
""")
_RECORD_HISTORY = text("""
INSERT INTO stock_changes
    (sku, event_id, kind, quantity, delta, resulting_quantity, location_id, reason, erp_timestamp, outcome)
SELECT * FROM unnest(
    CAST(:sku AS varchar[]), CAST(:event_id AS varchar[]), CAST(:kind AS varchar[]),
    CAST(:quantity AS integer[]), CAST(:delta AS integer[]), CAST(:resulting_quantity AS integer[]),
    CAST(:location_id AS varchar[]), CAST(:reason AS varchar[]), CAST(:erp_timestamp AS timestamptz[]),
    CAST(:outcome AS varchar[]))
""")


@dataclass(frozen=True)
class _Level:
    quantity: int
    as_of: datetime


def _next_level(
    level: _Level | None, event: InventoryChange, applied_deltas: list[tuple[datetime, int]]
) -> tuple[StockChangeOutcome, _Level]:
    # A fresh event's outcome and the SKU's figure after it, as workers/stock.py's upserts decide.
    data = event.data
    if level is not None and level.as_of > event.timestamp:
        return STALE, level
    if data.new_quantity is not None:
        later = sum(delta for stamped, delta in applied_deltas if stamped >= event.timestamp)
        return APPLIED, _Level(data.new_quantity + later, event.timestamp)
    delta = data.quantity_change or 0
    if level is None:
        return APPLIED, _Level(delta, NO_TOTAL_YET)
    return APPLIED, _Level(level.quantity + delta, level.as_of)


def apply_inventory_batch(events: list[InventoryChange], session: Session) -> list[StockChangeOutcome]:
    """Apply the events as `apply_inventory_change` would one by one, in four statements."""
    if not events:
        return []
    event_ids = sorted({event.event_id for event in events})
    fresh = set(session.scalars(_RECORD_EVENTS, {"event_ids": event_ids, "event_type": events[0].event_type}))
    skus = sorted({event.data.sku for event in events})
    levels: dict[str, _Level | None] = dict.fromkeys(skus)
    for sku, quantity, as_of in session.execute(_LOCK_LEVELS, {"skus": skus}):
        levels[sku] = _Level(quantity, as_of)
    missing = [sku for sku, level in levels.items() if level is None]
    applied_deltas = _applied_deltas_since_new_totals(session, [event for event in events if event.event_id in fresh])

    outcomes: list[StockChangeOutcome] = []
    history: list[dict[str, Any]] = []
    final: dict[str, _Level] = {}
    new_figures: set[str] = set()
    for event in events:
        sku = event.data.sku
        outcome = DUPLICATE
        if event.event_id in fresh:
            fresh.discard(event.event_id)  # any later copy in this batch is a duplicate
            outcome, level = _next_level(levels[sku], event, applied_deltas.get(sku, []))
            levels[sku] = level
            if outcome is APPLIED:
                final[sku] = level
                if event.data.new_quantity is not None:
                    new_figures.add(sku)
                else:
                    applied_deltas.setdefault(sku, []).append((event.timestamp, event.data.quantity_change or 0))
        if outcome is not APPLIED:
            logger.info("event %s for sku %s recorded as %s", event.event_id, sku, outcome.value)
        outcomes.append(outcome)
        history.append(_history_row(event, outcome, levels[sku]))

    # A figure beyond an integer fails the casts below, as it fails its own event one by one;
    # the consumer's fallback then parks just that event.
    _write_levels(session, dict(sorted(final.items())), new_figures, missing)
    session.execute(_RECORD_HISTORY, {column: [row[column] for row in history] for column in history[0]})
    return outcomes


def _applied_deltas_since_new_totals(
    session: Session, fresh_events: list[InventoryChange]
) -> dict[str, list[tuple[datetime, int]]]:
    """Per SKU given a new total, the applied deltas stamped at or after its earliest one."""
    since: dict[str, datetime] = {}
    for event in fresh_events:
        if event.data.new_quantity is not None:
            sku = event.data.sku
            since[sku] = min(since.get(sku, event.timestamp), event.timestamp)
    found: dict[str, list[tuple[datetime, int]]] = {}
    if not since:
        return found
    rows = session.execute(_LATER_DELTAS, {"skus": list(since), "since": list(since.values())})
    for sku, stamped, delta in rows:
        found.setdefault(sku, []).append((stamped, delta))
    return found


def _write_levels(session: Session, levels: dict[str, _Level], new_figures: set[str], missing: list[str]) -> None:
    parameters = {
        "skus": list(levels),
        "quantities": [level.quantity for level in levels.values()],
        "as_of": [level.as_of for level in levels.values()],
        "new_figure": [sku in new_figures for sku in levels],
        "missing": missing,
    }
    written = set(session.scalars(_WRITE_LEVELS, parameters))
    if lost := set(levels) - written:
        raise DatabaseUnavailable(f"stock of skus {sorted(lost)} was created concurrently; run the batch again")


def _history_row(event: InventoryChange, outcome: StockChangeOutcome, level: _Level | None) -> dict[str, Any]:
    data = event.data
    kind = StockChangeKind.ABSOLUTE if data.new_quantity is not None else StockChangeKind.DELTA
    return {
        "sku": data.sku,
        "event_id": event.event_id,
        "kind": kind.value,
        "quantity": data.new_quantity,
        "delta": data.quantity_change,
        "resulting_quantity": level.quantity if level is not None else None,
        "location_id": data.location_id,
        "reason": data.reason,
        "erp_timestamp": event.timestamp,
        "outcome": outcome.value,
    }
