"""The stock rule applied to a whole snapshot at once: the sweep's set-based statements.

The rule is workers/stock_rule.py's; this is the same rule in SQL over every SKU at once (a
million in seconds), and tests/integration/workers/test_reconcile_rule.py checks the two decide
alike. The snapshot in `reconcile_snapshot` is a total of each SKU it lists, stamped `taken`, on the
ERP's clock the earliest its receipt of the request can have been (workers/reconcile.py):

- a figure building on a total stamped in the second of `taken` or later stays: it may be newer
  than the snapshot's row of its SKU. A correction is stamped `taken` too, so a figure the ERP
  stamps in the second of the snapshot or later, arriving after the sweep, still applies;
- the applied deltas stamped at or after `taken` are added back onto the snapshot's figure. One
  stamped before `read_until` (the latest the ERP's clock can have shown when the snapshot was read
  in full) may or may not be in it, so such a SKU is left alone rather than corrected on a guess.
  A correction keeps that span (`erp_unsure_before`), and the stock rule counts no receipt stamped
  in it that arrives later: the snapshot may hold it;
- only a figure that changes is written ("corrected", with a history row and a correction
  record); a SKU the rule leaves as it is keeps its `erp_as_of` too, so the hold-release trigger
  of migration 0002 runs for corrected SKUs alone.

The changes are found first (`find_changes`), then either applied (`apply_changes`) or, when the
run is held by a change limit, kept in `reconciliation_held_changes` (`hold_changes`) until an
operator approves the run (`load_held_changes`, then `apply_changes` with the run's own times: a
figure stamped after the snapshot, arrived meanwhile, still wins).

Everything runs inside the caller's transaction, on psycopg alone (see workers/reconcile.py).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

# A SKU's applied deltas stamped since `taken`: the sum of those stamped from `read_until` on, and
# whether any was stamped while the snapshot streamed.
_LATER_DELTAS = """
LEFT JOIN LATERAL (
    SELECT sum(c.delta) FILTER (WHERE c.erp_timestamp >= %(read_until)s) AS delta,
           COALESCE(bool_or(c.erp_timestamp < %(read_until)s), false) AS unsure
      FROM stock_changes c
     WHERE c.sku = {sku} AND c.kind = 'delta' AND c.outcome = 'applied' AND c.erp_timestamp >= %(taken)s
) later ON true"""
_HAS_LATER_DELTAS = """EXISTS (
    SELECT 1 FROM stock_changes c
     WHERE c.sku = l.sku AND c.kind = 'delta' AND c.outcome = 'applied' AND c.erp_timestamp >= %(taken)s)"""
_DIFF_TABLE = """
CREATE TEMP TABLE reconcile_diff (sku text, old_qty bigint, erp_qty bigint, new_qty bigint, erp_as_of timestamptz,
                                  unsure boolean, applied boolean NOT NULL DEFAULT false,
                                  kept boolean NOT NULL DEFAULT false) ON COMMIT DROP"""
# The comparison locks nothing: a sweep the change limits hold (a broken export, a change for every
# SKU) writes no stock, and a dry run's transaction stays open while the changes are written out,
# at a reader's pace. The rows are locked only to be written (`_LOCK`), where every figure is
# checked again.
# The deltas are looked up only for a SKU that differs from the snapshot or has a delta since
# (an index probe); a figure that differs from the snapshot only by the deltas since is no drift.
_DIFF = """
WITH differing AS (
    SELECT l.sku, l.erp_quantity, s.qty, l.erp_as_of
      FROM stock_levels l JOIN reconcile_snapshot s ON s.sku = l.sku
     WHERE l.erp_quantity <> s.qty OR """ + _HAS_LATER_DELTAS + """
)
INSERT INTO reconcile_diff (sku, old_qty, erp_qty, new_qty, erp_as_of, unsure)
SELECT d.sku, d.erp_quantity, d.qty, d.qty + COALESCE(later.delta, 0), d.erp_as_of, later.unsure
  FROM differing d""" + _LATER_DELTAS.format(sku="d.sku") + """
 WHERE d.erp_quantity <> d.qty + COALESCE(later.delta, 0)"""
_CORRECTABLE = "{d}erp_as_of < %(taken)s AND NOT {d}unsure"
# In SKU order, as every stock writer locks: in any other, a writer of two SKUs could deadlock with
# the sweep, and PostgreSQL might abort it. A webhook committing from now on waits for us.
_LOCK = "SELECT 1 FROM stock_levels l JOIN reconcile_diff d ON d.sku = l.sku ORDER BY l.sku FOR UPDATE OF l"
# Each change decided again under the lock, where every committed figure is seen (a webhook may
# have written one since the comparison; an approved held run meets them days later): a figure
# newer than the snapshot, or a delta that may or may not be in it, is kept; one already right is
# left as it is; the others are written. The deltas since are summed again, and the old figure a
# correction records is the one it replaces.
_DECIDE = """
UPDATE reconcile_diff d SET old_qty = l.erp_quantity, new_qty = d.erp_qty + COALESCE(later.delta, 0),
       kept = l.erp_as_of >= %(taken)s OR later.unsure,
       applied = NOT (l.erp_as_of >= %(taken)s OR later.unsure) AND l.erp_quantity <> d.erp_qty + COALESCE(later.delta, 0)
  FROM stock_levels l""" + _LATER_DELTAS.format(sku="l.sku") + """
 WHERE l.sku = d.sku AND """ + _CORRECTABLE.format(d="d.")
# A correction was received by no door: a figure of its second arriving later wins the tie (workers/stock_rule.py).
_CORRECT = """
UPDATE stock_levels l SET erp_quantity = d.new_qty, erp_as_of = %(taken)s, erp_unsure_before = %(read_until)s,
       received_at = NULL, updated_at = now()
  FROM reconcile_diff d WHERE l.sku = d.sku AND d.applied"""
_RECORD = """
INSERT INTO reconciliation_corrections (run_id, sku, old_qty, new_qty)
SELECT %(run)s, sku, old_qty, new_qty FROM reconcile_diff WHERE applied"""
_HISTORY = """
INSERT INTO stock_changes (sku, event_id, kind, quantity, resulting_quantity, reason, erp_timestamp, outcome)
SELECT sku, 'reconcile:' || %(run)s, 'absolute', erp_qty, new_qty, 'RECONCILE', %(taken)s, 'applied'
  FROM reconcile_diff WHERE applied"""
_COUNT_DIFF = """
SELECT count(*) FILTER (WHERE """ + _CORRECTABLE.format(d="") + """),
       count(*) FILTER (WHERE NOT (""" + _CORRECTABLE.format(d="") + """)),
       count(*) FILTER (WHERE """ + _CORRECTABLE.format(d="") + """ AND new_qty <= 0 AND old_qty > 0)
  FROM reconcile_diff"""
_HOLD = """
INSERT INTO reconciliation_held_changes (run_id, sku, old_qty, erp_qty, new_qty)
SELECT %(run)s, sku, old_qty, erp_qty, new_qty FROM reconcile_diff WHERE """ + _CORRECTABLE.format(d="")
_LOAD_HELD = """
INSERT INTO reconcile_diff (sku, old_qty, erp_qty, new_qty, erp_as_of, unsure)
SELECT sku, old_qty, erp_qty, new_qty, '-infinity', false FROM reconciliation_held_changes WHERE run_id = %(run)s"""
_OUTCOMES = """
SELECT count(*) FILTER (WHERE applied), count(*) FILTER (WHERE kept), count(*) FILTER (WHERE NOT applied AND NOT kept)
  FROM reconcile_diff WHERE """ + _CORRECTABLE.format(d="")
# Every change a run would write, with the stock held for orders on its SKU (for --dry-run).
_CHANGES = """
SELECT d.sku, d.old_qty, d.erp_qty, d.new_qty,
       (SELECT COALESCE(sum(h.quantity), 0) FROM stock_holds h WHERE h.sku = d.sku AND h.released_at IS NULL)
  FROM reconcile_diff d WHERE """ + _CORRECTABLE.format(d="d.") + " ORDER BY d.sku"


@dataclass(frozen=True, slots=True)
class Changes:
    """What a comparison found: SKUs it would correct, of them those set to zero, and those kept as newer."""

    changed: int
    zeroed: int
    newer_kept: int


@dataclass(frozen=True, slots=True)
class Applied:
    """What writing the changes did, decided under the lock: SKUs corrected, kept as newer than the
    snapshot (or unsure), and already right by then."""

    corrected: int
    kept: int
    already_right: int


@dataclass(frozen=True, slots=True)
class Change:
    """One SKU a run would correct: commerce's figure, the snapshot's, the result, and the stock held."""

    sku: str
    commerce_qty: int
    erp_qty: int
    new_qty: int
    held: int


Connection = psycopg.Connection[TupleRow]


def find_changes(conn: Connection, run_id: int, taken: datetime, read_until: datetime) -> Changes:
    """Compare `reconcile_snapshot` with our stock by the rule into `reconcile_diff`; writes and locks nothing."""
    params: dict[str, Any] = {"run": run_id, "taken": taken, "read_until": read_until}
    conn.execute(_DIFF_TABLE)
    conn.execute(_DIFF, params)
    row = conn.execute(_COUNT_DIFF, params).fetchone()
    if row is None:
        raise LookupError("the count of differing SKUs returned no row")
    return Changes(changed=row[0], newer_kept=row[1], zeroed=row[2])


def apply_changes(conn: Connection, run_id: int, taken: datetime, read_until: datetime) -> Applied:
    """Write the changes in `reconcile_diff` the rule still allows, with their records."""
    params: dict[str, Any] = {"run": run_id, "taken": taken, "read_until": read_until}
    conn.execute(_LOCK)
    conn.execute(_DECIDE, params)
    conn.execute(_CORRECT, params)
    conn.execute(_RECORD, params)
    conn.execute(_HISTORY, params)
    row = conn.execute(_OUTCOMES, params).fetchone()
    if row is None:
        raise LookupError("the count of applied changes returned no row")
    return Applied(corrected=row[0], kept=row[1], already_right=row[2])


def hold_changes(conn: Connection, run_id: int, taken: datetime) -> None:
    """Keep the changes in `reconcile_diff` for a decision on the held run."""
    conn.execute(_HOLD, {"run": run_id, "taken": taken})


def load_held_changes(conn: Connection, run_id: int) -> None:
    """Fill `reconcile_diff` with a held run's changes, to apply them."""
    conn.execute(_DIFF_TABLE)
    conn.execute(_LOAD_HELD, {"run": run_id})


def changes(conn: Connection, taken: datetime) -> Iterator[Change]:
    """Every change in `reconcile_diff`, by SKU, streamed."""
    with conn.cursor(name="reconcile_changes") as cursor:
        cursor.itersize = 10_000
        for sku, old, erp, new, held in cursor.execute(_CHANGES, {"taken": taken}):
            yield Change(sku, old, erp, new, held)


def correct_to_snapshot(conn: Connection, run_id: int, taken: datetime, read_until: datetime) -> tuple[int, int]:
    """Find and apply every change at once, with no limit: (corrected, kept as newer than the snapshot)."""
    found = find_changes(conn, run_id, taken, read_until)
    applied = apply_changes(conn, run_id, taken, read_until)
    return applied.corrected, found.newer_kept + applied.kept
