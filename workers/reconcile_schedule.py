"""When the sweep runs: the next cron slot in the configured time zone, and the scheduler loop.

After each slot's sweep, the idempotency records past IDEMPOTENCY_WINDOW_S are pruned.

Every scheduler process computes the same slots; the sweep it starts records its slot, and only
one running or succeeded run may hold a slot (migration 0003), besides the advisory lock that
keeps sweeps from overlapping. So one scheduler or three, the sweep runs once a slot.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import requests
from croniter import croniter

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.errors import ErpSyncError
from erp_sync.shared.row_counts import drifted_counts, fold_row_counts, recount
from erp_sync.shared.schema import require_current_schema
from erp_sync.shared.settings import Settings
from erp_sync.workers.idempotency_window import prune_processed_events
from erp_sync.workers.signals import stop_on_signals
from erp_sync.workers.reconcile import close_runs_of_ended_sweeps, run_sweep

logger = logging.getLogger(__name__)

MAX_SLEEP_S = 60.0  # wake now and then: a clock set forward (or a suspended VM) is noticed


def next_run(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first slot strictly after `after`, in UTC.

    Slots are wall-clock times in `tz`. One that does not exist (spring forward) runs at the same
    distance past the gap (02:30 becomes 03:30); one that exists twice (fall back) runs once, at
    its first occurrence.
    """
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    after_utc = after.astimezone(UTC)
    slots = croniter(cron, after.astimezone(tz).replace(tzinfo=None))
    while True:
        wall: datetime = slots.get_next(datetime)
        # fold=0: the first of two 02:30s; a nonexistent 02:30 takes the offset before the gap.
        candidate = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if candidate > after_utc:
            return candidate


def run_reconcile_worker(settings: Settings, stop: threading.Event | None = None, *,
                         clock: Callable[[], datetime] | None = None) -> None:
    """Sweep at every slot of RECONCILE_SCHEDULE until `stop` is set (SIGTERM and SIGINT set it)."""
    stop = stop or stop_on_signals("finishing the current sweep", settings.worker_stop_timeout_s)
    now = clock or (lambda: datetime.now(UTC))
    tz = ZoneInfo(settings.reconcile_timezone)
    settings.erp_credentials("the reconcile worker")  # refuse to start, naming the variable, rather than fail at 3 AM
    require_current_schema(settings.database_url)
    http = requests.Session()
    slot = next_run(settings.reconcile_schedule, tz, now())
    _close_runs_of_ended_sweeps(settings)
    logger.info("reconcile worker started; next sweep at %s", slot.astimezone(tz).isoformat())
    try:
        while not stop.is_set():
            wait_s = (slot - now()).total_seconds()
            if wait_s > 0:
                stop.wait(min(wait_s, MAX_SLEEP_S))
                continue
            _sweep_slot(settings, http, slot)
            _prune(settings, stop, now())
            _keep_counts(settings)
            slot = next_run(settings.reconcile_schedule, tz, max(now(), slot + timedelta(seconds=1)))
            logger.info("reconcile worker: next sweep at %s", slot.astimezone(tz).isoformat())
    finally:
        http.close()
        logger.info("reconcile worker stopped")


def _close_runs_of_ended_sweeps(settings: Settings) -> None:
    try:
        close_runs_of_ended_sweeps(settings)
    except ErpSyncError as exc:
        # The next sweep closes them instead; the worker's start is not the database's to refuse.
        logger.warning("could not check for sweeps that ended unfinished: %s", exc)


def _prune(settings: Settings, stop: threading.Event, now: datetime) -> None:
    try:
        prune_processed_events(settings, stop, now)
    except ErpSyncError as exc:
        logger.warning("could not prune idempotency records past IDEMPOTENCY_WINDOW_S; the next slot tries again: %s",
                       exc)


def _keep_counts(settings: Settings) -> None:
    # /metrics folds at every scrape; this keeps the changes few where nothing scrapes.
    try:
        logger.info("folded %d changes into the row counts", fold_row_counts(settings.database_url))
        for drift in drifted_counts(settings.database_url):
            logger.warning("the kept counts of %s were %s, its rows %s (a load with the triggers off?): counting "
                           "again", drift.counted, drift.kept, drift.scanned)
            recount(settings.database_url, drift.counted)
    except ErpSyncError as exc:
        logger.warning("could not fold, check or count again the row counts; the next slot tries again: %s", exc)


def _sweep_slot(settings: Settings, http: requests.Session, slot: datetime) -> None:
    try:
        summary = run_sweep(settings, scheduled_for=slot, http=http)
    except ErpSyncError as exc:
        # Not even recorded (the database is down), so no run tells of it: a person must hear, as of
        # a failed sweep. The next slot tries again.
        alert(Cause.SWEEP_FAILED, "reconciliation for slot %s could not run: %s", slot.isoformat(), exc)
        return
    logger.info("reconciliation for slot %s: run %s %s", slot.isoformat(), summary.run_id, summary.status)
