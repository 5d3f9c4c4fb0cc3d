"""A worker's own HTTP listener on METRICS_PORT: `GET /metrics` for Prometheus and `GET /healthz` for liveness.

`/metrics` is this process's registry (its message counters and latencies) followed by the
figures read at each scrape from the broker or the database (`collectors`). `/healthz` answers
200 while `alive()` holds (a consuming worker: each of its consumers holds its connection), 503
otherwise, so an orchestrator restarts a worker that stays cut off.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import Settings

logger = logging.getLogger(__name__)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        """A scrape every few seconds is not news: no access log."""


def metrics_app(name: str, collectors: Iterable[Collector], alive: Callable[[], bool]) -> Callable[..., list[bytes]]:
    """The WSGI app of a worker's listener."""
    state = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        state.register(collector)

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            up = alive()
            start_response("200 OK" if up else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [json.dumps({"worker": name, "status": "ok" if up else "down"}).encode()]
        if path == "/metrics":
            body = generate_latest(REGISTRY) + generate_latest(state)
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


@contextmanager
def serving_metrics(settings: Settings, name: str, collectors: Iterable[Collector] = (),
                    alive: Callable[[], bool] = lambda: True) -> Iterator[int | None]:
    """Serve /metrics and /healthz on METRICS_HOST:METRICS_PORT meanwhile (nothing when the port is 0); yields the port."""
    if not settings.metrics_port:
        yield None
        return
    try:
        server = make_server(settings.metrics_host, settings.metrics_port, metrics_app(name, collectors, alive),
                             server_class=_Server, handler_class=_QuietHandler)
    except OSError as exc:
        raise ConfigurationError(
            f"METRICS_PORT: cannot listen on {settings.metrics_host}:{settings.metrics_port} ({exc.strerror}); "
            "set another port, or 0 for none") from exc
    thread = threading.Thread(target=server.serve_forever, name=f"{name}-metrics", daemon=True)
    thread.start()
    logger.info("worker %s serves /metrics and /healthz on %s:%d", name, settings.metrics_host, settings.metrics_port)
    try:
        yield settings.metrics_port
    finally:
        server.shutdown()
        server.server_close()
