"""The sweep's and the holds' figures on /metrics, read from the database at each scrape (no state in the ingress)."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from erp_sync.shared import scraped
from erp_sync.shared.hold_figures import HoldFigures, hold_figures
from erp_sync.shared.models import ReconciliationRun
from erp_sync.shared.reconcile_errors import STOPPED_BY_OPERATOR

RUNS = ReconciliationRun.__table__
LAST_RUN_FIGURES = ("checked", "mismatched", "corrected", "newer_kept", "missing_in_commerce", "missing_in_erp")


def reconcile_metrics(engine: Engine) -> Iterator[Metric]:
    """Gauges of the latest finished sweep, the latest success, runs per status, and the stock holds."""
    with engine.begin() as conn:  # committed: the counts' fold (shared/row_counts.py)
        last = conn.execute(
            # A rejected run is the latest sweep too: without it, the run before would raise again
            # the drift or failure an operator had closed.
            select(RUNS).where(RUNS.c.status.in_(("succeeded", "failed", "held", "rejected")),
                               # An operator's Ctrl-C is no failure to alert on (ErpSyncSweepFailed).
                               RUNS.c.error.is_distinct_from(STOPPED_BY_OPERATOR))
            .order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(1)
        ).mappings().one_or_none()
        last_success = conn.scalar(select(func.max(RUNS.c.finished_at)).where(RUNS.c.status == "succeeded"))
        per_status = conn.execute(select(RUNS.c.status, func.count()).group_by(RUNS.c.status)).all()
        holds = hold_figures(conn)
    yield from _hold_metrics(holds)
    success = GaugeMetricFamily("erp_sync_reconcile_last_success_timestamp_seconds",
                                "When the latest succeeded sweep finished (alert when too old)")
    if last_success is not None:
        success.add_metric([], last_success.timestamp())
    yield success
    runs = GaugeMetricFamily("erp_sync_reconcile_runs", "Recorded sweeps by status", labels=["status"])
    for status, count in per_status:
        runs.add_metric([status], count)
    yield runs
    if last is None:
        return
    failed = GaugeMetricFamily("erp_sync_reconcile_last_run_failed", "1 when the latest sweep failed")
    failed.add_metric([], int(last["status"] == "failed"))
    yield failed
    alert = GaugeMetricFamily("erp_sync_reconcile_drift_alert", "1 when the latest sweep found drift above the share")
    alert.add_metric([], int(last["drift_alert"]))
    yield alert
    if last["finished_at"] is not None:
        duration = GaugeMetricFamily("erp_sync_reconcile_last_duration_seconds", "How long the latest sweep took")
        duration.add_metric([], (last["finished_at"] - last["started_at"]).total_seconds())
        yield duration
    skus = GaugeMetricFamily("erp_sync_reconcile_last_skus", "SKU counts of the latest sweep", labels=["kind"])
    for name in LAST_RUN_FIGURES:
        skus.add_metric([name], last[name])
    yield skus
    drift = GaugeMetricFamily("erp_sync_reconcile_last_drift_share",
                              "Share of the SKUs checked by the latest sweep that had drifted")
    drift.add_metric([], last["mismatched"] / last["checked"] if last["checked"] else 0.0)
    yield drift


def _hold_metrics(holds: HoldFigures) -> Iterator[Metric]:
    open_ = GaugeMetricFamily("erp_sync_stock_holds_open", "Stock holds for orders the ERP has not yet counted")
    open_.add_metric([], holds.open)
    yield open_
    oldest = GaugeMetricFamily("erp_sync_stock_holds_oldest_open_age_seconds",
                               "Age of the oldest open stock hold (0 without any)")
    oldest.add_metric([], holds.oldest_open_age_s)
    yield oldest
    released = GaugeMetricFamily("erp_sync_stock_holds_released", "Stock holds ended, by cause", labels=["reason"])
    for reason, count in holds.released.items():
        released.add_metric([reason], count)
    yield released


def reconcile_collector(engine: Engine) -> scraped.ScrapedCollector:
    """The sweep's and the holds' metrics, with `erp_sync_reconcile_metrics_up`."""
    return scraped.ScrapedCollector("erp_sync_reconcile_metrics_up", "1 when the runs could be read from the database",
                                    (SQLAlchemyError,), lambda: reconcile_metrics(engine))


def exposition(engine: Engine) -> bytes:
    """The sweep's metrics in the text format, to append to the ingress's own."""
    return scraped.exposition(reconcile_collector(engine))
