"""Prometheus metrics of the ingress, and `GET /metrics`.

Each worker is a process of its own; `PROMETHEUS_MULTIPROC_DIR` (set by `erp-sync ingress`)
makes /metrics add up every worker's figures. A dead worker's counters and histograms still
count; its live gauges must not, and granian has no hook for a worker's exit, so each scrape
drops those of processes that are gone.
"""
from __future__ import annotations

import os
import re
import threading

from flask import Blueprint, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from erp_sync.ingress import extensions
from erp_sync.shared import order_metrics, queue_metrics, reconcile_metrics
from erp_sync.shared.counters import from_zero

bp = Blueprint("metrics", __name__)

WEBHOOKS_ACCEPTED = Counter(
    "erp_sync_webhooks_accepted_total", "Webhooks stored on the broker and answered 202", ["event_type"]
)
REJECTION_REASONS = ("content_encoding", "signature", "content_type", "invalid", "timestamp", "too_large",
                     "queue_full", "unavailable")
WEBHOOKS_REJECTED = from_zero(Counter(
    "erp_sync_webhooks_rejected_total", "Webhooks answered with an error, by reason", ["reason"]
), reason=REJECTION_REASONS)
PUBLISH_SECONDS = Histogram(
    "erp_sync_publish_seconds",
    "Time from publish to the broker's confirm",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


# prometheus_client's file for one process's gauges in a `live*` mode.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]*_(\d+)\.db")
_STATE_REGISTRY = "erp_sync.state_metrics"
_STATE_LOCK = threading.Lock()


def forget_dead_processes(directory: str) -> None:
    """Remove the live gauges of the processes that have exited, as a child-exit hook would."""
    for name in os.listdir(directory):
        match = _LIVE_GAUGE_FILE.fullmatch(name)
        if match and not _alive(int(match[1])):
            multiprocess.mark_process_dead(int(match[1]), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


@bp.get("/metrics")
def metrics() -> Response:
    if directory := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        forget_dead_processes(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return Response(generate_latest(registry) + generate_latest(_state_registry()), content_type=CONTENT_TYPE_LATEST)


def _state_registry() -> CollectorRegistry:
    # The sweeps, holds and orders live in the database, the queues' depths on the broker, not in
    # any process: read on each scrape (one short connection and a passive declare per queue). One
    # registry an app: each collector keeps a read that outlasted its deadline from one scrape to the next.
    with _STATE_LOCK:
        registry: CollectorRegistry | None = current_app.extensions.get(_STATE_REGISTRY)
        if registry is None:
            registry = current_app.extensions[_STATE_REGISTRY] = CollectorRegistry(auto_describe=False)
            registry.register(reconcile_metrics.reconcile_collector(extensions.engine()))
            registry.register(order_metrics.order_collector(extensions.engine()))
            registry.register(queue_metrics.queue_collector(extensions.settings()))
    return registry
