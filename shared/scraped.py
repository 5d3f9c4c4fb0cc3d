"""Metrics read from a service at each scrape, so the ingress keeps no state of its own to serve them."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

# Below Prometheus's default scrape_timeout (10 s): a broker or database that hangs rather than
# refuses made a scrape take 15 s or more, and the process was paged as down (ErpSyncWorkerDown)
# while the rule meant for it (ErpSyncFiguresUnreadable, on the `up_name` gauge) never got a sample.
READ_DEADLINE_S = 5.0


class _Unanswered(Exception):
    """The service did not answer the read in time."""


class ScrapedCollector(Collector):
    """Yields the gauge `up_name` (1 when `read` worked; else 0 and nothing more), then what `read` found.

    `read` runs on a thread of its own and is given READ_DEADLINE_S: past that the scrape answers 0 at
    once, and until that read ends, later scrapes answer 0 without starting another.
    """

    def __init__(self, up_name: str, up_help: str, failures: tuple[type[Exception], ...],
                 read: Callable[[], Iterable[Metric]]) -> None:
        self.up_name, self.up_help, self.failures, self.read = up_name, up_help, failures, read
        self._unreadable: tuple[type[Exception], ...] = (*failures, _Unanswered)
        self._lock = threading.Lock()
        self._pending: Future[list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(self.up_name, self.up_help)
        try:
            metrics = self._read_in_time()
        except self._unreadable as exc:
            logger.warning("%s: cannot read: %s", self.up_name, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _read_in_time(self) -> list[Metric]:
        with self._lock:
            if self._pending is not None and not self._pending.done():
                raise _Unanswered(f"an earlier read has not ended after more than {READ_DEADLINE_S:g} s")
            self._pending = pending = self._start_read()
        try:
            return pending.result(timeout=READ_DEADLINE_S)
        except FutureTimeout:
            raise _Unanswered(f"no answer in {READ_DEADLINE_S:g} s") from None

    def _start_read(self) -> Future[list[Metric]]:
        # A daemon thread, not an executor's: a read hanging on a frozen service must not hold up the
        # process's exit, which joins an executor's threads.
        pending: Future[list[Metric]] = Future()

        def read() -> None:
            try:
                pending.set_result(list(self.read()))
            except BaseException as exc:  # noqa: BLE001 (handed to the scrape waiting for it)
                pending.set_exception(exc)

        threading.Thread(target=read, name=f"{self.up_name} read", daemon=True).start()
        return pending


def exposition(collector: Collector) -> bytes:
    """The collector's metrics in the text format, to append to the ingress's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
