"""Production serving: gunicorn with threaded workers on an app factory, TLS when configured.

The ERP's door and the storefront's API are served alike, each on its own listener.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from erp_sync.shared.settings import Settings


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Listener:
    """Where one audience's app listens, and how many processes and threads serve it."""

    host: str
    port: int
    workers: int
    threads: int


def door_listener(settings: Settings, port: int | None = None) -> Listener:
    return Listener(settings.ingress_host, port or settings.ingress_port, settings.ingress_workers,
                    settings.ingress_threads)


def api_listener(settings: Settings, port: int | None = None) -> Listener:
    return Listener(settings.api_host, port or settings.api_port, settings.api_workers, settings.api_threads)


def gunicorn_options(settings: Settings, listener: Listener | None = None) -> dict[str, Any]:
    """The gunicorn settings erp-sync runs with; the benchmark reuses them for its bare endpoint."""
    listener = listener or door_listener(settings)
    options: dict[str, Any] = {
        "bind": f"{listener.host}:{listener.port}",
        "workers": listener.workers,
        # Threads let many requests wait for their confirms at once on one publisher connection.
        "worker_class": "gthread",
        "threads": listener.threads,
        "keepalive": 5,
        "graceful_timeout": 20,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "child_exit": _child_exit,
    }
    if settings.ingress_tls_certfile and settings.ingress_tls_keyfile:
        options["certfile"] = str(settings.ingress_tls_certfile)
        options["keyfile"] = str(settings.ingress_tls_keyfile)
    return options


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, app_factory: Callable[[], Flask], options: dict[str, Any]) -> None:
        self._app_factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self._app_factory()


def serve(settings: Settings, app_factory: Callable[[], Flask], listener: Listener) -> None:
    """Run gunicorn in the foreground until it is told to stop."""
    # Must be set before any worker defines its metrics, so /metrics adds up all workers.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="erp-sync-metrics-"))
    _Server(app_factory, gunicorn_options(settings, listener)).run()


def serve_door(settings: Settings, port: int | None = None) -> None:
    """`erp-sync ingress`: the ERP's door."""
    from erp_sync.ingress import create_app

    settings.webhook_secrets()  # refuse to start without a secret, before forking anything
    serve(settings, lambda: create_app(settings), door_listener(settings, port))


def serve_api(settings: Settings, port: int | None = None) -> None:
    """`erp-sync api`: the storefront's read API."""
    from erp_sync.ingress.storefront import create_api_app

    settings.storefront_tokens()  # refuse to start without a token, before forking anything
    serve(settings, lambda: create_api_app(settings), api_listener(settings, port))
