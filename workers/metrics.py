"""Prometheus metrics the workers define (the consumer's own are in shared/message_metrics.py).

Each worker process serves its registry on METRICS_PORT (workers/metrics_server.py).
"""
from __future__ import annotations

from prometheus_client import Counter

from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable

EVENT_ID_CONFLICTS = Counter(
    "erp_sync_event_id_conflicts", "ERP events parked because their id was applied before with another body",
    ["event_type"],
)
MEDIA_IMAGES = Counter(
    "erp_sync_media_images", "Images the media worker tried, by outcome (a failed one shows without its picture)",
    ["outcome"],
)
ERP_CALLS = Counter(
    "erp_sync_erp_calls", "Calls to the ERP (a push after its quick retries, or a probe), by result",
    ["call", "result"],
)


def erp_call_result(error: BaseException | None) -> str:
    """The `result` label of an ERP call that ended with `error` (None: it succeeded)."""
    if error is None:
        return "ok"
    if isinstance(error, ErpMisconfigured):
        return "misconfigured"
    if isinstance(error, ErpUnavailable):
        return "unavailable"
    if isinstance(error, ErpRejected):
        return "rejected"
    return "error"
