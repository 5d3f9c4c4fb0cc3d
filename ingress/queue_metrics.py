"""Each work queue's depth against its bound on /metrics, read from the broker at each scrape."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from erp_sync.ingress import scraped
from erp_sync.shared.broker import queue_depths
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.settings import Settings


def queue_metrics(settings: Settings) -> Iterator[Metric]:
    """Gauges of messages ready on each work queue and the bound at which it refuses publishes."""
    depths = queue_depths(settings.amqp_url)
    bound = settings.queue_bound
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
    return scraped.exposition(scraped.ScrapedCollector(
        "erp_sync_queue_metrics_up", "1 when the queue depths could be read from RabbitMQ", (BrokerUnavailable,),
        lambda: queue_metrics(settings)))
