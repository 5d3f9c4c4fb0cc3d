"""The one path of stock events into the stock tables: the rule of workers/stock_rule.py, applied in bulk.

Every writer of ERP stock figures comes here (the inventory worker with a batch of events or a
batch of one, the catalog worker with a group's figures), and it takes three statements however
many events and SKUs:

1. lock the rows of the SKUs with a fresh event, in sku order (every writer locks in that order,
   so two wait for each other rather than deadlock), creating a `NO_FIGURE` row where there is
   none: a row created concurrently is then waited for and built on, never overwritten. The
   inventory worker does this in the statement that records its events (`record_and_lock`), a
   round trip fewer for each batch;
2. read the figures and, for a SKU given a total, the applied deltas stamped at or after its
   earliest one: after the lock, so all committed ones;
3. write each changed SKU's final figure and every event's history row.

The events are decided in arrival order in between, by the rule alone. The hold-release trigger
on stock_levels (migration 0002) sees each SKU's newest figure once rather than every figure on the
way; as figures only move forward, it releases the same holds. A sum of deltas is written without
touching `erp_as_of`, as an update OF erp_as_of fires that trigger. An event that names the order
it deducts ends that order's hold of its SKU whatever its outcome: stale or not, the SKU's figure
now counts the order (workers/hold_rule.py).
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from erp_sync.shared.logs import ids
from erp_sync.shared.models import StockChangeKind, StockChangeOutcome
from erp_sync.workers.hold_rule import release_named_holds
from erp_sync.workers.idempotency import RECORD_FRESH, Recording
from erp_sync.workers.stock_rule import NO_TOTAL_YET, Change, Decision, Figure, Ledger, Total

logger = logging.getLogger(__name__)

# Plain SQL over arrays: one statement text whatever the batch size, so PostgreSQL and
# SQLAlchemy both reuse it (and SQLAlchemy cannot cache a compiled ON CONFLICT, sqlalchemy#10445).
# A conflicting ON CONFLICT DO UPDATE locks the row even where its WHERE leaves it unchanged.
_LOCK = text("""
INSERT INTO stock_levels (sku, erp_quantity, erp_as_of)
SELECT sku, 0, :no_total_yet FROM unnest(CAST(:skus AS varchar[])) AS wanted (sku) ORDER BY sku
ON CONFLICT (sku) DO UPDATE SET erp_quantity = stock_levels.erp_quantity WHERE false
""")
# The same lock, of the SKUs whose events `RECORD_FRESH` inserted: all of them are recorded before
# the first row is locked (the sort waits for every id), so the locks are taken in the order above.
_RECORD_AND_LOCK = text(f"""
WITH recorded AS ({RECORD_FRESH}), locked AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of)
    SELECT DISTINCT wanted.sku, 0, CAST(:no_total_yet AS timestamptz)
    FROM unnest(CAST(:lock_ids AS varchar[]), CAST(:lock_skus AS varchar[])) AS wanted (event_id, sku)
    JOIN recorded ON recorded.event_id = wanted.event_id
    ORDER BY wanted.sku
    ON CONFLICT (sku) DO UPDATE SET erp_quantity = stock_levels.erp_quantity WHERE false
)
SELECT event_id FROM recorded
""")
# Joined to the wanted SKUs rather than `WHERE sku = ANY(...)`, which the planner answers with a
# sequential scan of a table whose rows all churn (five times slower, measured at 2,000 SKUs).
# The stale receipts since are read too: those a figure may have held are held back, and a later
# total that cannot hold them counts them (workers/stock_rule.py; any truly stale one is older than
# every total that applies). Each kind through its own partial index.
_READ = text("""
SELECT level.sku, level.erp_quantity, level.erp_as_of, level.erp_unsure_before, level.received_at,
       later.stamps, later.deltas, held.stamps, held.deltas
FROM unnest(CAST(:skus AS varchar[]), CAST(:since AS timestamptz[])) AS wanted (sku, since)
JOIN stock_levels AS level ON level.sku = wanted.sku
LEFT JOIN LATERAL (
    SELECT array_agg(change.erp_timestamp) AS stamps, array_agg(change.delta) AS deltas
    FROM stock_changes AS change
    WHERE change.sku = wanted.sku AND change.kind = 'delta' AND change.outcome = 'applied'
      AND change.erp_timestamp >= wanted.since
) AS later ON true
LEFT JOIN LATERAL (
    SELECT array_agg(change.erp_timestamp) AS stamps, array_agg(change.delta) AS deltas
    FROM stock_changes AS change
    WHERE change.sku = wanted.sku AND change.kind = 'delta' AND change.outcome = 'stale' AND change.delta > 0
      AND change.erp_timestamp >= wanted.since
) AS held ON true
""")
# Upserts rather than UPDATE ... FROM, so each row is found through the primary key whatever the
# planner thinks of the array (every row exists and is locked by now). A new total sets erp_as_of
# (and its own second as the span it may hold, and when the door received it), a sum of deltas leaves
# them out of the SET (see the docstring).
_WRITE = text("""
WITH level AS (
    SELECT * FROM unnest(CAST(:skus AS varchar[]), CAST(:quantities AS bigint[]),
                         CAST(:as_of AS timestamptz[]), CAST(:received_at AS timestamptz[]),
                         CAST(:new_total AS boolean[]))
        AS level (sku, erp_quantity, erp_as_of, received_at, new_total)
), total AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of, received_at)
    SELECT sku, erp_quantity, erp_as_of, received_at FROM level WHERE new_total
    ON CONFLICT (sku) DO UPDATE
    SET erp_quantity = excluded.erp_quantity, erp_as_of = excluded.erp_as_of, erp_unsure_before = NULL,
        received_at = excluded.received_at, updated_at = now()
), deltas AS (
    INSERT INTO stock_levels (sku, erp_quantity, erp_as_of)
    SELECT sku, erp_quantity, erp_as_of FROM level WHERE NOT new_total
    ON CONFLICT (sku) DO UPDATE SET erp_quantity = excluded.erp_quantity, updated_at = now()
)
INSERT INTO stock_changes
    (sku, event_id, kind, quantity, delta, resulting_quantity, location_id, reason, erp_timestamp, outcome)
SELECT * FROM unnest(
    CAST(:h_sku AS varchar[]), CAST(:h_event_id AS varchar[]), CAST(:h_kind AS varchar[]),
    CAST(:h_quantity AS bigint[]), CAST(:h_delta AS bigint[]), CAST(:h_resulting_quantity AS bigint[]),
    CAST(:h_location_id AS varchar[]), CAST(:h_reason AS varchar[]), CAST(:h_erp_timestamp AS timestamptz[]),
    CAST(:h_outcome AS varchar[]))
""")


@dataclass(frozen=True, slots=True)
class StockEvent:
    """One stock figure or difference for one SKU, with the context its history row keeps."""

    event_id: str
    sku: str
    change: Change
    duplicate: bool = False  # its event id was recorded before: it changes nothing
    location_id: str | None = None
    reason: str | None = None
    order_id: str | None = None  # the order the ERP says this change deducts (`reference_id`)


def record_and_lock(skus: Mapping[str, str]) -> Recording:
    """Record events and lock the stock rows of the SKUs of the fresh ones (event id -> SKU), in one statement.

    For `record_events`; then `apply_stock_events(..., locked=True)`.
    """
    return Recording(_RECORD_AND_LOCK, {"lock_ids": list(skus), "lock_skus": list(skus.values()),
                                        "no_total_yet": NO_TOTAL_YET})


def apply_stock_events(session: Session, events: Sequence[StockEvent], *, locked: bool = False,
                       log_each: bool = True) -> list[Decision]:
    """Decide the events in arrival order by the stock rule and write the outcome; one decision each.

    `locked`: the rows of the fresh events' SKUs are locked already (`record_and_lock`).
    `log_each`: a line at INFO for the events and one for each not applied (an applied one's line is
    at DEBUG, but for a lone event's); each outcome is in stock_changes either way.
    """
    if not events:
        return []
    if not locked and (fresh_skus := sorted({event.sku for event in events if not event.duplicate})):
        session.execute(_LOCK, {"skus": fresh_skus, "no_total_yet": NO_TOTAL_YET})
    ledgers = _read_ledgers(session, events)

    decisions: list[Decision] = []
    history: list[dict[str, Any]] = []
    changed: dict[str, bool] = {}  # SKU -> whether a new total moved erp_as_of
    # A line per applied event was a tenth of the inventory worker's CPU: a batch of several has one
    # line, and the exceptions keep theirs. A lone event keeps its own line at INFO.
    alone = len(events) == 1
    applied_level = logging.INFO if alone else logging.DEBUG
    for event in events:
        ledger = ledgers.get(event.sku)
        decision = (ledger or Ledger()).take(event.change, duplicate=event.duplicate)
        applied = decision.outcome is StockChangeOutcome.APPLIED
        if applied:
            changed[event.sku] = changed.get(event.sku, False) or isinstance(event.change, Total)
        level = applied_level if applied else logging.INFO
        if log_each and logger.isEnabledFor(level):
            logger.log(level, "event %s for sku %s %s", event.event_id, event.sku, decision.outcome.value,
                       extra=ids(event_id=event.event_id, sku=event.sku))
        decisions.append(decision)
        # Only an event seen before can meet a SKU without a row (a fresh one's row is made above).
        history.append(_history_row(event, decision, decision.figure.quantity if ledger else None))
    if log_each and not alone:
        _log_outcomes(events, decisions)

    # A figure beyond an integer fails the casts below, as a whole: the inventory worker's
    # consumer then applies the events one by one and parks just that one.
    figures = {sku: ledgers[sku].figure for sku in sorted(changed)}
    session.execute(_WRITE, {
        "skus": list(figures),
        "quantities": [figure.quantity for figure in figures.values()],
        "as_of": [figure.as_of for figure in figures.values()],
        "received_at": [figure.received_at for figure in figures.values()],
        "new_total": [changed[sku] for sku in figures],
        **{f"h_{column}": [row[column] for row in history] for column in history[0]},
    })
    release_named_holds(session, ((event.order_id, event.sku) for event in events if event.order_id))
    return decisions


def _log_outcomes(events: Sequence[StockEvent], decisions: Sequence[Decision]) -> None:
    counts = Counter(decision.outcome for decision in decisions)
    logger.info("stock events %s to %s: %d applied, %d stale, %d duplicate", events[0].event_id, events[-1].event_id,
                counts[StockChangeOutcome.APPLIED], counts[StockChangeOutcome.STALE], counts[StockChangeOutcome.DUPLICATE])


def _read_ledgers(session: Session, events: Sequence[StockEvent]) -> dict[str, Ledger]:
    """Each SKU's figure and the applied and held-back deltas its earliest total in `events` may add back."""
    since: dict[str, datetime | None] = {}
    for event in events:
        earliest = since.get(event.sku)
        if isinstance(event.change, Total) and not event.duplicate:
            stamped = event.change.stamped
            since[event.sku] = stamped if earliest is None else min(earliest, stamped)
        else:
            since.setdefault(event.sku, None)
    skus = sorted(since)
    # .all(): one fetch of every row, not a fetch per row (a tenth of a 1,000-variant group's CPU).
    rows = session.execute(_READ, {"skus": skus, "since": [since[sku] for sku in skus]}).all()
    return {
        sku: Ledger(Figure(quantity, as_of, unsure_before, received_at),
                    list(zip(stamps or [], deltas or [], strict=True)),
                    list(zip(held_stamps or [], held_deltas or [], strict=True)))
        for sku, quantity, as_of, unsure_before, received_at, stamps, deltas, held_stamps, held_deltas in rows
    }


def _history_row(event: StockEvent, decision: Decision, resulting_quantity: int | None) -> dict[str, Any]:
    if isinstance(event.change, Total):
        kind, quantity, delta = StockChangeKind.ABSOLUTE, event.change.quantity, None
    else:
        kind, quantity, delta = StockChangeKind.DELTA, None, event.change.change
    return {
        "sku": event.sku,
        "event_id": event.event_id,
        "kind": kind.value,
        "quantity": quantity,
        "delta": delta,
        "resulting_quantity": resulting_quantity,
        "location_id": event.location_id,
        "reason": event.reason,
        "erp_timestamp": event.change.stamped,
        "outcome": decision.outcome.value,
    }
