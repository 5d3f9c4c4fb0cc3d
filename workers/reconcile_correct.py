"""The stock rule applied to a whole snapshot at once: the sweep's set-based statements.

The rule is workers/stock_rule.py's; this is the same rule in SQL over every SKU at once (a
million in seconds), and tests/integration/workers/test_reconcile_rule.py checks the two decide
alike. The snapshot in `reconcile_snapshot` is a total of each SKU it lists, stamped `taken` (when
the sweep began, before the request):

- a figure building on a total stamped after `taken` is newer and stays (stale); on a tie the
  snapshot, the later arrival, wins;
- the applied deltas stamped at or after `taken` are added back onto the snapshot's figure. One
  stamped while the snapshot streamed (before `read_until`, when it was read in full) may or may
  not be in it, so such a SKU is left alone rather than corrected on a guess;
- only a figure that changes is written ("corrected", with a history row and a correction
  record); a SKU the rule leaves as it is keeps its `erp_as_of` too, so the hold-release trigger
  of migration 0002 runs for corrected SKUs alone.

Everything runs inside the caller's transaction, on psycopg alone (see workers/reconcile.py).
"""
from __future__ import annotations

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
CREATE TEMP TABLE reconcile_diff (sku text, old_qty integer, erp_qty integer, new_qty integer, erp_as_of timestamptz,
                                  unsure boolean) ON COMMIT DROP"""
# FOR UPDATE: a webhook committing meanwhile waits for us, and the old figure we record is current.
# The deltas are looked up only for a SKU that differs from the snapshot or has a delta since
# (an index probe); a figure that differs from the snapshot only by the deltas since is no drift.
_DIFF = """
WITH differing AS (
    SELECT l.sku, l.erp_quantity, s.qty, l.erp_as_of
      FROM stock_levels l JOIN reconcile_snapshot s ON s.sku = l.sku
     WHERE l.erp_quantity <> s.qty OR """ + _HAS_LATER_DELTAS + """
       FOR UPDATE OF l
)
INSERT INTO reconcile_diff (sku, old_qty, erp_qty, new_qty, erp_as_of, unsure)
SELECT d.sku, d.erp_quantity, d.qty, d.qty + COALESCE(later.delta, 0), d.erp_as_of, later.unsure
  FROM differing d""" + _LATER_DELTAS.format(sku="d.sku") + """
 WHERE d.erp_quantity <> d.qty + COALESCE(later.delta, 0)"""
_CORRECTABLE = "{d}erp_as_of <= %(taken)s AND NOT {d}unsure"
# The deltas are summed again here: the rows are locked now, so every committed one is seen.
_CORRECT = """
WITH corrected AS (
    UPDATE stock_levels l SET erp_quantity = d.erp_qty + COALESCE(later.delta, 0), erp_as_of = %(taken)s,
           updated_at = now()
      FROM reconcile_diff d""" + _LATER_DELTAS.format(sku="d.sku") + """
     WHERE l.sku = d.sku AND """ + _CORRECTABLE.format(d="d.") + """
    RETURNING l.sku, l.erp_quantity
)
UPDATE reconcile_diff d SET new_qty = c.erp_quantity FROM corrected c WHERE d.sku = c.sku"""
_RECORD = """
INSERT INTO reconciliation_corrections (run_id, sku, old_qty, new_qty)
SELECT %(run)s, sku, old_qty, new_qty FROM reconcile_diff WHERE """ + _CORRECTABLE.format(d="")
_HISTORY = """
INSERT INTO stock_changes (sku, event_id, kind, quantity, resulting_quantity, reason, erp_timestamp, outcome)
SELECT sku, 'reconcile:' || %(run)s, 'absolute', erp_qty, new_qty, 'RECONCILE', %(taken)s, 'applied'
  FROM reconcile_diff WHERE """ + _CORRECTABLE.format(d="")
_COUNT_DIFF = """
SELECT count(*) FILTER (WHERE """ + _CORRECTABLE.format(d="") + """),
       count(*) FILTER (WHERE NOT (""" + _CORRECTABLE.format(d="") + """))
  FROM reconcile_diff"""


def correct_to_snapshot(
    conn: psycopg.Connection[TupleRow], run_id: int, taken: datetime, read_until: datetime
) -> tuple[int, int]:
    """Correct every SKU of `reconcile_snapshot` the rule changes: (corrected, kept as newer than the snapshot)."""
    params: dict[str, Any] = {"run": run_id, "taken": taken, "read_until": read_until}
    conn.execute(_DIFF_TABLE)
    conn.execute(_DIFF, params)
    conn.execute(_CORRECT, params)
    conn.execute(_RECORD, params)
    conn.execute(_HISTORY, params)
    row = conn.execute(_COUNT_DIFF, params).fetchone()
    if row is None:
        raise LookupError("the count of differing SKUs returned no row")
    corrected, newer_kept = row
    return corrected, newer_kept
