"""Prometheus metrics the workers define (the consumer's own are in shared/message_metrics.py).

Each worker process serves its registry on METRICS_PORT (workers/metrics_server.py).
"""
from __future__ import annotations

from prometheus_client import Counter

from erp_sync.shared.counters import from_zero
from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable

EVENT_TYPES = ("catalog.update", "inventory.change")
IMAGE_OUTCOMES = ("confirmed", "retried", "failed")
ERP_CALL_RESULTS = ("ok", "misconfigured", "unavailable", "rejected", "error")

EVENT_ID_CONFLICTS = from_zero(Counter(
    "erp_sync_event_id_conflicts", "ERP events parked because their id was applied before with another body",
    ["event_type"],
), event_type=EVENT_TYPES)
MEDIA_IMAGES = from_zero(Counter(
    "erp_sync_media_images", "Images the media worker tried, by outcome (a failed one shows without its picture)",
    ["outcome"],
), outcome=IMAGE_OUTCOMES)
ERP_CALLS = from_zero(Counter(
    "erp_sync_erp_calls", "Calls to the ERP (a push after its quick retries, or a probe), by result",
    ["call", "result"],
), call=("push", "probe"), result=ERP_CALL_RESULTS)


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
