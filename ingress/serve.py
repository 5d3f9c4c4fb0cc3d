"""Production serving: gunicorn with threaded workers on the app factory, TLS when configured."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from erp_sync.shared.settings import Settings


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def gunicorn_options(settings: Settings, port: int | None = None) -> dict[str, Any]:
    """The gunicorn settings erp-sync runs with; the benchmark reuses them for its bare endpoint."""
    options: dict[str, Any] = {
        "bind": f"{settings.ingress_host}:{port or settings.ingress_port}",
        "workers": settings.ingress_workers,
        # Threads let many requests wait for their confirms at once on one publisher connection.
        "worker_class": "gthread",
        "threads": settings.ingress_threads,
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


def serve(settings: Settings, port: int | None = None, app_factory: Callable[[], Flask] | None = None) -> None:
    """Run gunicorn in the foreground until it is told to stop."""
    # Must be set before any worker defines its metrics, so /metrics adds up all workers.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="erp-sync-metrics-"))
    if app_factory is None:
        from erp_sync.ingress import create_app

        settings.webhook_secrets()  # refuse to start without a secret, before forking anything

        def app_factory() -> Flask:
            return create_app(settings)

    _Server(app_factory, gunicorn_options(settings, port)).run()
