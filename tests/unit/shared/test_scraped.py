"""Figures read at each scrape: a service that hangs is told as unreadable in time, with one read at most under way."""
from __future__ import annotations

import threading

from prometheus_client.core import GaugeMetricFamily

from erp_sync.shared import scraped
from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.scraped import ScrapedCollector


def values(collector: ScrapedCollector) -> dict[str, float]:
    return {sample.name: sample.value for metric in collector.collect() for sample in metric.samples}


def test_a_service_that_hangs_is_told_unreadable_and_no_second_read_piles_up(monkeypatch):
    # given a broker that hangs (no refusal, no answer) until released
    monkeypatch.setattr(scraped, "READ_DEADLINE_S", 0.2)
    answering, reads = threading.Event(), []

    def read() -> list[GaugeMetricFamily]:
        reads.append(1)
        answering.wait(30)
        return [GaugeMetricFamily("thing_depth", "depth", value=7)]

    collector = ScrapedCollector("thing_metrics_up", "readable", (BrokerUnavailable,), read)

    # when it is scraped twice meanwhile
    first, second = values(collector), values(collector)

    # then each scrape says the figures are unreadable rather than outlasting the scrape's own timeout
    # (the process paged as down), and the second started no read beside the one still hanging
    assert first == second == {"thing_metrics_up": 0}
    assert len(reads) == 1

    # and once the service answers again, so does the next scrape
    answering.set()
    collector._pending.result(timeout=5)  # noqa: SLF001 (the hanging read, ended)
    assert values(collector) == {"thing_metrics_up": 1, "thing_depth": 7}


def test_a_refusal_is_told_unreadable_at_once():
    def read() -> list[GaugeMetricFamily]:
        raise BrokerUnavailable("refused")

    assert values(ScrapedCollector("thing_metrics_up", "readable", (BrokerUnavailable,), read)) == {
        "thing_metrics_up": 0}
