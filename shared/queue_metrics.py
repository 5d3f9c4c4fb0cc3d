"""Work queues' depths against their bound, and their parked messages, read from the broker at each scrape."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import WORK_QUEUES, WorkQueue

logger = logging.getLogger(__name__)


class QueueCollector(Collector):
    """Gauges of messages ready and parked for each work queue (all by default), and its bound."""

    def __init__(self, settings: Settings, queues: Iterable[WorkQueue] | None = None) -> None:
        self._settings = settings
        self._queues = list(WORK_QUEUES.values() if queues is None else queues)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("erp_sync_queue_metrics_up", "1 when the queue depths could be read from RabbitMQ")
        names = [queue.name for queue in self._queues] + [queue.parking_queue for queue in self._queues]
        try:
            depths = queue_depths(self._settings.amqp_url, names)
        except BrokerUnavailable as exc:
            logger.warning("queue metrics: cannot read the queues: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        bound = self._settings.queue_bound
        messages = GaugeMetricFamily("erp_sync_queue_messages", "Messages ready on the work queue", labels=["queue"])
        parked = GaugeMetricFamily("erp_sync_queue_parked_messages",
                                   "Messages parked for an operator from the work queue", labels=["queue"])
        max_messages = GaugeMetricFamily("erp_sync_queue_max_messages",
                                         "Messages the work queue holds before it refuses publishes", labels=["queue"])
        max_bytes = GaugeMetricFamily("erp_sync_queue_max_bytes",
                                      "Bytes the work queue holds before it refuses publishes", labels=["queue"])
        for queue in self._queues:
            messages.add_metric([queue.name], depths[queue.name])
            parked.add_metric([queue.name], depths[queue.parking_queue])
            max_messages.add_metric([queue.name], bound.max_length)
            max_bytes.add_metric([queue.name], bound.max_bytes)
        yield from (messages, parked, max_messages, max_bytes)


def exposition(settings: Settings) -> bytes:
    """The queue metrics in the text format, to append to the ingress's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(settings))
    return generate_latest(registry)
