"""The nightly sweep (spec 5.1): the ERP's snapshot compared with our stock, drift corrected in bulk.

One sweep at a time across processes: a session-level advisory lock, held by the sweep's own
connection from start to end; a sweep that cannot take it is recorded as skipped and returns at
once. The snapshot is COPYed into a temporary table and compared with set-based statements in ONE
transaction, committed only after the whole snapshot was read: a broken stream changes nothing.

psycopg and requests only, never SQLAlchemy: the sweeping process's peak memory is a target, and
SQLAlchemy's import alone would take it past.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta

import psycopg
import requests
from psycopg.rows import TupleRow, dict_row

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.errors import ErpMisconfigured, ErpSyncError, ErpUnavailable
from erp_sync.shared.pg import connect, translate_pg_error
from erp_sync.shared.reconcile_errors import STOPPED_BY_OPERATOR
from erp_sync.shared.settings import Settings
from erp_sync.workers.erp_clock import furthest_ahead
from erp_sync.workers.http_deadlines import Cut, Deadlines, cut_at, cut_short_as, watched
from erp_sync.workers.reconcile_correct import Change, apply_changes, changes, find_changes, hold_changes
from erp_sync.workers.reconcile_limits import Tally, held_reason
from erp_sync.workers.reconcile_summary import SweepSummary, summary_of
from erp_sync.workers.snapshot_reader import (
    Snapshot,
    SnapshotBroken,
    SnapshotSource,
    check_ijson_backend,
)

logger = logging.getLogger(__name__)

LOCK_KEY = 7_305_921  # pg_advisory_lock key of the sweep; no other lock in erp-sync uses it
SAMPLE_SKUS = 100
DEADLINE_CHECK_ROWS = 10_000
# A SKU met again within this many rows (and up to twice as many) fails the read at once: a page
# the ERP's paging repeats, not the unique index once the endless stream has ended.
RECENT_ROWS = 10_000
_DEADLINES = Deadlines("snapshot-deadline")

INTERRUPTED = "interrupted: the sweeping process ended without finishing"
_INTERRUPTED = """
UPDATE reconciliation_runs SET status = 'failed', finished_at = clock_timestamp(), error = %(error)s
 WHERE status = 'running' RETURNING id"""
_START = """
INSERT INTO reconciliation_runs (status, scheduled_for) VALUES ('running', %(slot)s)
ON CONFLICT (scheduled_for) WHERE status IN ('running', 'succeeded', 'held') DO NOTHING RETURNING id"""
_SKIPPED = """
INSERT INTO reconciliation_runs (status, scheduled_for, finished_at, error)
VALUES ('skipped', %(slot)s, clock_timestamp(), %(reason)s) RETURNING id"""
_FAILED = """
UPDATE reconciliation_runs SET status = 'failed', finished_at = clock_timestamp(), error = %(error)s,
       snapshot_taken_at = %(taken)s WHERE id = %(run)s"""
_SNAPSHOT_TABLE = "CREATE TEMP TABLE reconcile_snapshot (sku text NOT NULL, qty bigint NOT NULL) ON COMMIT DROP"
_SNAPSHOT_INDEX = "CREATE UNIQUE INDEX ON reconcile_snapshot (sku)"
_MISSING_IN_COMMERCE = """
SELECT s.sku, count(*) OVER () FROM reconcile_snapshot s
 WHERE NOT EXISTS (SELECT 1 FROM stock_levels l WHERE l.sku = s.sku) ORDER BY s.sku LIMIT %(cap)s"""
_MISSING_IN_ERP = """
SELECT l.sku, count(*) OVER () FROM stock_levels l
 WHERE NOT EXISTS (SELECT 1 FROM reconcile_snapshot s WHERE s.sku = l.sku) ORDER BY l.sku LIMIT %(cap)s"""
_COMMERCE = "SELECT count(*), count(*) FILTER (WHERE erp_quantity > 0) FROM stock_levels"
_FINISH = """
UPDATE reconciliation_runs
   SET status = %(status)s, held_reason = %(held_reason)s, snapshot_read_until = %(read_until)s, finished_at = clock_timestamp(), snapshot_taken_at = %(taken)s,
       snapshot_form = %(form)s, checked = %(checked)s, mismatched = %(mismatched)s, corrected = %(corrected)s,
       newer_kept = %(newer_kept)s,
       missing_in_commerce = %(missing_in_commerce)s, missing_in_erp = %(missing_in_erp)s,
       drift_alert = %(drift_alert)s, missing_skus = CAST(%(missing_skus)s AS jsonb)
 WHERE id = %(run)s"""


_RUN = "SELECT * FROM reconciliation_runs WHERE id = %s"

Connection = psycopg.Connection[TupleRow]


def snapshot_source(settings: Settings, http: requests.Session) -> SnapshotSource:
    """The ERP's snapshot endpoint as the settings describe it, read through `http` under `_reading`'s deadline."""
    base_url, token = settings.erp_credentials("the sweep")
    return SnapshotSource(watched(http), base_url, token, connect_timeout_s=settings.erp_connect_timeout_s,
                          read_timeout_s=settings.reconcile_read_timeout_s, ca_bundle=settings.erp_ca_bundle,
                          tries=settings.erp_quick_retries, backoff_base_s=settings.erp_quick_retry_base_s,
                          clock_skew=timedelta(seconds=settings.erp_clock_skew_s),
                          max_clock_ahead=furthest_ahead(settings.webhook_max_future_skew_s))


def run_sweep(settings: Settings, *, scheduled_for: datetime | None = None,
              http: requests.Session | None = None, dry_run: bool = False,
              on_change: Callable[[Change], None] | None = None) -> SweepSummary:
    """Sweep once unless another sweep runs (or this schedule slot was swept): the recorded summary.

    A run past a change limit (workers/reconcile_limits.py) writes nothing and is recorded `held`.
    `dry_run`: the same comparison, nothing written (not even the run), neither the sweep's lock nor
    any stock row taken, and no alert raised; each change the sweep would make is passed to
    `on_change`, and the summary says what the run would be (`drift_alert` included).

    Raises an ErpSyncError (DatabaseUnavailable, most likely) only when the run could not be recorded.
    """
    check_ijson_backend()
    source = snapshot_source(settings, http or requests.Session())
    try:
        # Closing the connection ends its session, which frees the lock however the sweep ended.
        with connect(settings.database_url, autocommit=True) as conn:
            if dry_run:
                # Without the sweep's lock: it writes nothing and locks no row, and a dry run left
                # listing into a pager must not make the night's sweep a skipped one.
                return _dry_run(settings, conn, source, on_change or (lambda change: None))
            if not try_sweep_lock(conn):
                return _skipped(conn, scheduled_for, "another sweep is running")
            return _locked_sweep(settings, conn, source, scheduled_for)
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc


def _locked_sweep(settings: Settings, conn: Connection, source: SnapshotSource,
                  scheduled_for: datetime | None) -> SweepSummary:
    with conn.transaction():
        close_interrupted(conn)
        started = conn.execute(_START, {"slot": scheduled_for}).fetchone()
    if started is None:
        return _skipped(conn, scheduled_for, "this schedule slot was already swept")
    run_id: int = started[0]
    logger.info("reconciliation run %d started", run_id)
    requested = datetime.now(UTC)
    try:
        with conn.transaction(), _reading(settings) as cut, source.open() as snapshot:
            _compare_and_correct(settings, conn, run_id, snapshot, cut)
    except KeyboardInterrupt:
        # The operator's own Ctrl-C: recorded, without an alert, if the connection still serves.
        with suppress(psycopg.Error):
            conn.execute(_FAILED, {"run": run_id, "error": STOPPED_BY_OPERATOR,
                                   "taken": requested})
        raise
    except (ErpSyncError, psycopg.Error) as exc:
        error = exc if isinstance(exc, ErpSyncError) else translate_pg_error(exc)
        if isinstance(error, ErpUnavailable) and not isinstance(error, ErpMisconfigured):
            alert(Cause.ERP_UNREACHABLE, "reconciliation run %d failed, the ERP is unreachable: %s", run_id, error)
        else:
            # A setting the ERP refuses, a broken snapshot, an answer it refuses: the next slot meets
            # the same until a person looks, and meanwhile the shop's drift goes uncorrected.
            alert(Cause.SWEEP_FAILED, "reconciliation run %d failed, nothing changed: %s", run_id, error)
        conn.execute(_FAILED, {"run": run_id, "error": str(error), "taken": requested})
    summary = read_summary(conn, run_id)
    alert_drift(settings, summary)
    if summary.status == "held":
        alert(Cause.SWEEP_HELD, "reconciliation run %d held, nothing changed: %s; decide with "
              "`erp-sync reconcile --approve %d` or `--reject %d`", run_id, summary.held_reason, run_id, run_id)
    if summary.status == "succeeded":
        logger.info("reconciliation run %d: %d checked, %d mismatched, %d corrected, %d newer kept in %.1f s",
                    run_id, summary.checked, summary.mismatched, summary.corrected, summary.newer_kept,
                    summary.duration_s)
    return summary


def _dry_run(settings: Settings, conn: Connection, source: SnapshotSource,
             on_change: Callable[[Change], None]) -> SweepSummary:
    """The whole sweep in one transaction rolled back at the end: the run it would record."""
    with conn.transaction() as tx:
        run_id: int = _one(conn.execute(_START, {"slot": None}))[0]
        with _reading(settings) as cut, source.open() as snapshot:
            taken = _compare_and_correct(settings, conn, run_id, snapshot, cut, dry_run=True)
        summary = read_summary(conn, run_id)
        for change in changes(conn, taken):
            on_change(change)
        raise psycopg.Rollback(tx)
    return dataclasses.replace(summary, run_id=None, dry_run=True)


@contextmanager
def _reading(settings: Settings) -> Iterator[Cut]:
    """The snapshot's sockets shut once the sweep has run RECONCILE_MAX_DURATION_S, from its request
    to its last row: the read timeout bounds each read, not an ERP trickling its answer, and the
    rows' own check waits for a row's end. Whatever a cut-short stream then raises, it is too slow."""
    with cut_at(time.monotonic() + settings.reconcile_max_duration_s, _DEADLINES) as cut, \
            cut_short_as(cut, ErpSyncError, lambda: _still_reading(settings)):
        yield cut


def _still_reading(settings: Settings) -> SnapshotBroken:
    return SnapshotBroken(f"snapshot: still reading after {settings.reconcile_max_duration_s:g} s")


def _compare_and_correct(settings: Settings, conn: Connection, run_id: int, snapshot: Snapshot,
                         cut: Cut, *, dry_run: bool = False) -> datetime:
    """Everything inside the caller's one transaction; commits nothing. The snapshot's `taken` mark.

    The snapshot counts what the ERP did up to some moment between its receipt of our request and
    our reading its last row. On the ERP's clock, which stamps the figures, that moment lies from
    `taken` (the earliest the receipt can have been) to `read_until` (the latest the ERP's clock can
    have shown at the last row), both read off the ERP's answer (workers/erp_clock.py), or a `{"url"}`
    file's making (workers/snapshot_reader.py).
    """
    taken = snapshot.taken()
    rows = _copied(settings, conn, snapshot, cut)
    read_until = snapshot.read_until(datetime.now(UTC))
    try:
        conn.execute(_SNAPSHOT_INDEX)
    except psycopg.errors.UniqueViolation as exc:
        raise SnapshotBroken(f"snapshot: a SKU appears twice ({exc.diag.message_detail})") from exc
    conn.execute("ANALYZE reconcile_snapshot")
    found = find_changes(conn, run_id, taken, read_until)
    in_commerce = conn.execute(_MISSING_IN_COMMERCE, {"cap": SAMPLE_SKUS}).fetchall()
    in_erp = conn.execute(_MISSING_IN_ERP, {"cap": SAMPLE_SKUS}).fetchall()
    missing_in_commerce = in_commerce[0][1] if in_commerce else 0
    missing_in_erp = in_erp[0][1] if in_erp else 0
    checked = rows - missing_in_commerce
    mismatched, newer_kept = found.changed + found.newer_kept, found.newer_kept
    skus, in_stock = _one(conn.execute(_COMMERCE))
    reason = held_reason(settings, Tally(skus=skus, in_stock=in_stock, changed=found.changed, zeroed=found.zeroed,
                                         missing=missing_in_erp))
    corrected = 0
    if reason is not None:
        if not dry_run:
            hold_changes(conn, run_id, taken)
    elif not dry_run:
        applied = apply_changes(conn, run_id, taken, read_until)
        # Decided again under the lock: a webhook may have written some of the SKUs since the comparison.
        corrected, newer_kept = applied.corrected, newer_kept + applied.kept
        mismatched -= applied.already_right
    # Raised (and recorded) for a run that applies its corrections: a held one's drift is not established
    # (a broken export, most often), and its held ALERT says so, until an operator approves it.
    drift_alert = reason is None and drifted(settings, checked, mismatched)
    conn.execute(_FINISH, {
        "run": run_id, "status": "held" if reason else "succeeded", "held_reason": reason, "read_until": read_until,
        "taken": taken, "form": snapshot.form, "checked": checked, "mismatched": mismatched, "corrected": corrected,
        "newer_kept": newer_kept, "missing_in_commerce": missing_in_commerce,
        "missing_in_erp": missing_in_erp, "drift_alert": drift_alert,
        "missing_skus": json.dumps({"missing_in_commerce": [sku for sku, _ in in_commerce],
                                    "missing_in_erp": [sku for sku, _ in in_erp]}),
    })
    return taken


def _copied(settings: Settings, conn: Connection, snapshot: Snapshot, cut: Cut) -> int:
    """The snapshot's rows COPYed into `reconcile_snapshot`: how many. A snapshot that repeats a page,
    or runs past RECONCILE_MAX_SNAPSHOT_ROWS, is broken before it fills the database's disk."""
    rows, limit, endless = 0, settings.reconcile_max_snapshot_rows, False
    recent: set[str] = set()
    before: set[str] = set()
    conn.execute(_SNAPSHOT_TABLE)
    with conn.cursor() as cursor, cursor.copy("COPY reconcile_snapshot (sku, qty) FROM STDIN") as copy:
        for row in snapshot.rows:
            if rows == limit:
                endless = True  # the COPY ends whole: the index then tells whether the rows repeat
                break
            sku = row[0]
            if sku in recent or sku in before:
                raise SnapshotBroken(f"snapshot row {rows + 1}: SKU {sku!r} appears twice within {2 * RECENT_ROWS:,} "
                                     "rows: does the ERP's export repeat a page?", row=rows + 1)
            recent.add(sku)
            if len(recent) == RECENT_ROWS:
                before, recent = recent, set()
            copy.write_row(row)
            rows += 1
            if rows % DEADLINE_CHECK_ROWS == 0 and cut.expired:  # rows still coming, however fast
                raise _still_reading(settings)
    if endless:
        raise _endless(settings, conn)
    if cut.happened.is_set():  # a stream without a length, cut at a line's end, just ends
        raise _still_reading(settings)
    return rows


def _endless(settings: Settings, conn: Connection) -> SnapshotBroken:
    """Rows beyond RECONCILE_MAX_SNAPSHOT_ROWS: whether the export repeats itself, or lists more SKUs than that."""
    beyond = f"snapshot: more than {settings.reconcile_max_snapshot_rows:,} rows (RECONCILE_MAX_SNAPSHOT_ROWS)"
    try:
        conn.execute(_SNAPSHOT_INDEX)
    except psycopg.errors.UniqueViolation as exc:
        return SnapshotBroken(f"{beyond}, a SKU among them twice ({exc.diag.message_detail}): the ERP's export "
                              "repeats itself (a paging cursor that loops?)")
    return SnapshotBroken(f"{beyond}, each SKU once: the ERP's export does not end, or lists more SKUs than "
                          "the setting allows")


def drifted(settings: Settings, checked: int, mismatched: int) -> bool:
    """Whether a run that applies its corrections found drift above RECONCILE_DRIFT_ALERT_SHARE."""
    return checked > 0 and mismatched / checked > settings.reconcile_drift_alert_share


def alert_drift(settings: Settings, summary: SweepSummary) -> None:
    """The drift ALERT of a run recorded with `drift_alert`: webhooks are being lost."""
    if summary.drift_alert:
        alert(Cause.SWEEP_DRIFT, "reconciliation run %d: %d of %d SKUs drifted (%.1f%%, above %.1f%%): "
              "webhooks are being lost", summary.run_id, summary.mismatched, summary.checked,
              100 * summary.mismatched / summary.checked, 100 * settings.reconcile_drift_alert_share)


def _skipped(conn: Connection, scheduled_for: datetime | None, reason: str) -> SweepSummary:
    run_id: int = _one(conn.execute(_SKIPPED, {"slot": scheduled_for, "reason": reason}))[0]
    logger.info("reconciliation run %d skipped: %s", run_id, reason)
    return read_summary(conn, run_id)


def read_summary(conn: Connection, run_id: int) -> SweepSummary:
    with conn.cursor(row_factory=dict_row) as cursor:
        run = cursor.execute(_RUN, (run_id,)).fetchone()
    if run is None:
        raise LookupError(f"reconciliation run {run_id} is not recorded")
    return summary_of(run)


def close_interrupted(conn: Connection) -> None:
    """Under the sweep's lock, a run still `running` belongs to a process that ended mid-sweep
    (killed, or past WORKER_STOP_TIMEOUT_S): record it failed, and alert, as any failed sweep. Its
    comparison and corrections were one transaction, which PostgreSQL rolled back."""
    for (run_id,) in conn.execute(_INTERRUPTED, {"error": INTERRUPTED}).fetchall():
        alert(Cause.SWEEP_FAILED, "reconciliation run %d failed, nothing changed: %s", run_id, INTERRUPTED)


def close_runs_of_ended_sweeps(settings: Settings) -> None:
    """`close_interrupted`, unless a sweep is in progress: what a reconcile worker does as it starts,
    rather than leave a killed sweep `running` until the next slot."""
    try:
        with connect(settings.database_url, autocommit=True) as conn:
            if try_sweep_lock(conn):
                close_interrupted(conn)
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc


def try_sweep_lock(conn: Connection) -> bool:
    """Whether this session took the sweep's lock (held until it ends or unlocks): no sweep is in progress."""
    return bool(_one(conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)))[0])


def _one(cursor: psycopg.Cursor[TupleRow]) -> TupleRow:
    """The one row of a statement that always returns one (an aggregate, a function, RETURNING)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row
