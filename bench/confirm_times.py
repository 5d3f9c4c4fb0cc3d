"""How long the broker took to confirm the door's publishes over a phase, from its /metrics histogram.

The door observes erp_sync_publish_seconds from publish to confirm in every worker; /metrics adds
the workers up. Two readings a phase apart give that phase's confirms by bucket: enough to tell a
tail made by RabbitMQ from one made in front of it (the connection, the worker, the generator).
"""
from __future__ import annotations

import http.client
import math
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

METRIC = "erp_sync_publish_seconds"
Buckets = dict[float, float]


def read_buckets(host: str, port: int) -> Buckets:
    """Cumulative counts by upper bound (seconds) of the door's publish-to-confirm histogram."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name == METRIC:
            for sample in family.samples:
                if sample.name == f"{METRIC}_bucket":
                    bound = float(sample.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def percentile_bound_ms(before: Mapping[float, float], after: Mapping[float, float], fraction: float) -> float:
    """The upper bound (ms) of the bucket holding that fraction of the confirms in between; nan without any."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return math.nan
    return next(bound * 1000 for bound, count in counts if count >= fraction * total)


def share_over(before: Mapping[float, float], after: Mapping[float, float], bound_s: float) -> float:
    """Share of the confirms in between that took longer than `bound_s` (one of the bucket bounds)."""
    total = after.get(math.inf, 0.0) - before.get(math.inf, 0.0)
    within = after.get(bound_s, 0.0) - before.get(bound_s, 0.0)
    return (total - within) / total if total > 0 else math.nan
