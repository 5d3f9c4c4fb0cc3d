"""An operator's decision on a held sweep: `reconcile --approve RUN` applies its changes, `--reject RUN` drops them.

Approving applies exactly the changes the run recorded, by the same statements as a sweep and with
the run's own snapshot times, so a figure stamped after the snapshot (a webhook that arrived while
the run waited) still wins, and the deltas stamped since are still counted. A run is decided once:
its status leaves `held` in the same transaction. A run a later sweep has overtaken (one that
compared a newer snapshot, held or not) can only be rejected: its figures are older than what that
sweep confirmed or holds, and a sweep that finds no difference leaves the figures' times alone.
psycopg only, as the sweep (workers/reconcile.py).
"""
from __future__ import annotations

import logging

import psycopg
from psycopg.rows import dict_row

from erp_sync.shared.held_runs import OVERTAKING_STATUSES
from erp_sync.shared.pg import connect, translate_pg_error
from erp_sync.shared.settings import Settings
from erp_sync.workers.reconcile import LOCK_KEY, Connection, alert_drift, drifted, read_summary, try_sweep_lock
from erp_sync.workers.reconcile_correct import apply_changes, load_held_changes
from erp_sync.workers.reconcile_summary import SweepSummary

logger = logging.getLogger(__name__)

_HELD_RUN = """
SELECT status, snapshot_taken_at, snapshot_read_until, checked, mismatched FROM reconciliation_runs
 WHERE id = %s FOR UPDATE"""
# A held change met a figure newer than the snapshot: kept, as a sweep keeps it. One already right
# by then is no longer a mismatch.
_APPROVED = """
UPDATE reconciliation_runs SET status = 'succeeded', corrected = %(corrected)s, decided_at = clock_timestamp(),
       newer_kept = newer_kept + %(kept)s, mismatched = %(mismatched)s, drift_alert = %(drift_alert)s
 WHERE id = %(run)s"""
_OVERTAKEN_BY = """
SELECT id, status FROM reconciliation_runs WHERE id > %s AND status = ANY(%s) ORDER BY id LIMIT 1"""
_REJECTED = "UPDATE reconciliation_runs SET status = 'rejected', decided_at = clock_timestamp() WHERE id = %(run)s"


class RunNotHeld(LookupError):
    """The run is unknown, or not (any longer) waiting for a decision."""


class RunOvertaken(RunNotHeld):
    """A later sweep compared a newer snapshot: the held run's changes are out of date."""


def approve_run(settings: Settings, run_id: int) -> SweepSummary:
    """Apply a held run's changes, except where a newer figure arrived meanwhile: the run's summary."""
    return _decide(settings, run_id, approve=True)


def reject_run(settings: Settings, run_id: int) -> SweepSummary:
    """Close a held run without writing anything: the run's summary."""
    return _decide(settings, run_id, approve=False)


def _decide(settings: Settings, run_id: int, *, approve: bool) -> SweepSummary:
    try:
        with connect(settings.database_url, autocommit=True) as conn:
            # Waits for a sweep in progress: its comparison and this one must not interleave.
            if not try_sweep_lock(conn):
                logger.warning("a sweep is in progress: run %d is decided once it ends", run_id)
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            with conn.transaction():
                _decide_locked(settings, conn, run_id, approve=approve)
            summary = read_summary(conn, run_id)
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc
    # Approved, its drift is established: the held ALERT said it might be a broken export.
    alert_drift(settings, summary)
    return summary


def _decide_locked(settings: Settings, conn: Connection, run_id: int, *, approve: bool) -> None:
    with conn.cursor(row_factory=dict_row) as cursor:
        run = cursor.execute(_HELD_RUN, (run_id,)).fetchone()
    if run is None or run["status"] != "held":
        state = "unknown" if run is None else run["status"]
        raise RunNotHeld(f"reconciliation run {run_id} is not held ({state}): nothing to decide")
    if not approve:
        conn.execute(_REJECTED, {"run": run_id})
        logger.warning("reconciliation run %d rejected: nothing changed", run_id)
        return
    later = conn.execute(_OVERTAKEN_BY, (run_id, list(OVERTAKING_STATUSES))).fetchone()
    if later is not None:
        raise RunOvertaken(f"reconciliation run {run_id} is older than run {later[0]} ({later[1]}), which compared "
                           f"a newer snapshot: its changes are out of date; reject it with "
                           f"`erp-sync reconcile --reject {run_id}`")
    load_held_changes(conn, run_id)
    applied = apply_changes(conn, run_id, run["snapshot_taken_at"], run["snapshot_read_until"])
    mismatched = run["mismatched"] - applied.already_right
    conn.execute(_APPROVED, {"run": run_id, "corrected": applied.corrected, "kept": applied.kept,
                             "mismatched": mismatched, "drift_alert": drifted(settings, run["checked"], mismatched)})
    logger.warning("reconciliation run %d approved: %d corrected", run_id, applied.corrected)
