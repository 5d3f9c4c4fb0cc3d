"""Work queues' depths against their bound, and their parked messages, read from the broker at each scrape."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from erp_sync.shared import scraped
from erp_sync.shared.broker import read_depths
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import WORK_QUEUES, WorkQueue


def queue_metrics(settings: Settings, queues: list[WorkQueue]) -> Iterator[Metric]:
    """Gauges of messages ready and parked for each work queue, and the bound at which it refuses publishes.

    No parked count while a reader (`erp-sync dlq`, the console's parked page) holds the parked
    messages: it would read less by what the reader holds, 0 for a whole listing.
    """
    depths = read_depths(settings.amqp_url, [q.name for q in queues] + [q.parking_queue for q in queues])
    bound = settings.queue_bound
    messages = GaugeMetricFamily("erp_sync_queue_messages", "Messages ready on the work queue", labels=["queue"])
    parked = GaugeMetricFamily("erp_sync_queue_parked_messages",
                               "Messages parked for an operator from the work queue", labels=["queue"])
    max_messages = GaugeMetricFamily("erp_sync_queue_max_messages",
                                     "Messages the work queue holds before it refuses publishes", labels=["queue"])
    max_bytes = GaugeMetricFamily("erp_sync_queue_max_bytes",
                                  "Bytes the work queue holds before it refuses publishes", labels=["queue"])
    for queue in queues:
        messages.add_metric([queue.name], depths.ready[queue.name])
        if not depths.parked_being_read:
            parked.add_metric([queue.name], depths.ready[queue.parking_queue])
        max_messages.add_metric([queue.name], bound.max_length)
        max_bytes.add_metric([queue.name], bound.max_bytes)
    yield from (messages, parked, max_messages, max_bytes)


def queue_collector(settings: Settings, queues: Iterable[WorkQueue] | None = None) -> scraped.ScrapedCollector:
    """The queue metrics of `queues` (every work queue by default), with `erp_sync_queue_metrics_up`."""
    chosen = list(WORK_QUEUES.values() if queues is None else queues)
    return scraped.ScrapedCollector("erp_sync_queue_metrics_up", "1 when the queue depths could be read from RabbitMQ",
                                    (BrokerUnavailable,), lambda: queue_metrics(settings, chosen))


def exposition(settings: Settings) -> bytes:
    """The queue metrics in the text format, to append to the ingress's own."""
    return scraped.exposition(queue_collector(settings))
