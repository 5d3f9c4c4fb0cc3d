"""Prometheus metrics of the workers, in the default registry.

No worker serves /metrics yet; a per-worker metrics endpoint exposes this registry as it is.
"""
from __future__ import annotations

from prometheus_client import Counter

EVENT_ID_CONFLICTS = Counter(
    "erp_sync_event_id_conflicts", "ERP events parked because their id was applied before with another body",
    ["event_type"],
)
