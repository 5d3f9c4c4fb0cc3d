"""Each work queue's depth against its bound on /metrics, read from the broker at each scrape."""
from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.settings import Settings

logger = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Gauges of messages ready on each work queue and the bound at which it refuses publishes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("erp_sync_queue_metrics_up", "1 when the queue depths could be read from RabbitMQ")
        try:
            depths = queue_depths(self._settings.amqp_url)
        except BrokerUnavailable as exc:
            logger.warning("queue metrics: cannot read the queues: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        bound = self._settings.queue_bound
        messages = GaugeMetricFamily("erp_sync_queue_messages", "Messages ready on the work queue", labels=["queue"])
        max_messages = GaugeMetricFamily("erp_sync_queue_max_messages",
                                         "Messages the work queue holds before it refuses publishes", labels=["queue"])
        max_bytes = GaugeMetricFamily("erp_sync_queue_max_bytes",
                                      "Bytes the work queue holds before it refuses publishes", labels=["queue"])
        for name, depth in depths.items():
            messages.add_metric([name], depth)
            max_messages.add_metric([name], bound.max_length)
            max_bytes.add_metric([name], bound.max_bytes)
        yield from (messages, max_messages, max_bytes)


def exposition(settings: Settings) -> bytes:
    """The queue metrics in the text format, to append to the ingress's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(settings))
    return generate_latest(registry)
