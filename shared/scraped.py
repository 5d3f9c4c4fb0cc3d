"""Metrics read from a service at each scrape, so the ingress keeps no state of its own to serve them."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class ScrapedCollector(Collector):
    """Yields the gauge `up_name` (1 when `read` worked; else 0 and nothing more), then what `read` found."""

    def __init__(self, up_name: str, up_help: str, failures: tuple[type[Exception], ...],
                 read: Callable[[], Iterable[Metric]]) -> None:
        self.up_name, self.up_help, self.failures, self.read = up_name, up_help, failures, read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(self.up_name, self.up_help)
        try:
            metrics = list(self.read())
        except self.failures as exc:
            logger.warning("%s: cannot read: %s", self.up_name, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics


def exposition(collector: Collector) -> bytes:
    """The collector's metrics in the text format, to append to the ingress's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
