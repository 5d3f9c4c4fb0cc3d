"""A worker's listener: /healthz says whether its consumers are connected, /metrics adds the figures read at each scrape."""
from __future__ import annotations

from collections.abc import Iterator
from wsgiref.util import setup_testing_defaults

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from erp_sync.shared import message_metrics
from erp_sync.workers.metrics_server import metrics_app


class Depth(Collector):
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("erp_sync_test_depth", "a figure read at each scrape", value=7)


def call(app, path: str) -> tuple[str, bytes]:
    environ: dict = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    answer: list[str] = []
    body = b"".join(app(environ, lambda status, headers: answer.append(status)))
    return answer[0], body


def test_healthz_follows_the_liveness_check():
    alive = [True]
    app = metrics_app("inventory", [], lambda: alive[0])

    assert call(app, "/healthz") == ("200 OK", b'{"worker": "inventory", "status": "ok"}')
    alive[0] = False
    assert call(app, "/healthz") == ("503 Service Unavailable", b'{"worker": "inventory", "status": "down"}')


def test_metrics_serve_the_process_registry_and_the_collectors():
    message_metrics.MESSAGES.labels(queue="erp-sync.test", outcome="stale").inc()

    status, body = call(metrics_app("inventory", [Depth()], lambda: True), "/metrics")

    assert status == "200 OK"
    assert b"erp_sync_test_depth 7.0" in body
    assert b'erp_sync_messages_total{outcome="stale",queue="erp-sync.test"}' in body


def test_other_paths_are_not_found():
    assert call(metrics_app("inventory", [], lambda: True), "/")[0] == "404 Not Found"


def test_consumers_count_as_connected_only_when_every_one_is():
    gauge = message_metrics.CONSUMER_CONNECTED
    gauge.clear()
    assert not message_metrics.consumers_connected()  # none has connected yet
    gauge.labels(queue="erp-sync.orders").set(1)
    gauge.labels(queue="erp-sync.orders-push").set(0)
    assert not message_metrics.consumers_connected()
    gauge.labels(queue="erp-sync.orders-push").set(1)
    assert message_metrics.consumers_connected()
    gauge.clear()
