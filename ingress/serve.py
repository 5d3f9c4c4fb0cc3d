"""Production serving: granian worker processes on uvloop, each running the app on threads; TLS when configured.

The ERP's door and the storefront's API are served alike, each on its own listener. granian
reads requests in Rust without a thread per connection and cuts a client whose headers take over
HTTP_READ_TIMEOUT_S; the bridge (ingress/bridge.py) reads bodies under the same deadline, so slow
clients cost a little memory for a bounded time, never a thread. The door's webhook, its whole
load, does not go to the threads at all: it is answered on the event loop (ingress/door.py); nor
does the API's usual read, the stock of a SKU with a figure (ingress/stock_desk.py).
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Flask
from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import MPServer

from erp_sync.ingress import extensions
from erp_sync.ingress.bridge import WsgiBridge
from erp_sync.ingress.health import ALIVE_ANSWER, LIVENESS_PATH
from erp_sync.ingress.tls_files import check_tls_files
from erp_sync.shared.amqp_url import amqp_parameters
from erp_sync.shared.async_publisher import LoopPublisher
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.heap import freeze_what_is_loaded
from erp_sync.shared.ports import why_unusable
from erp_sync.shared.schema import require_current_schema
from erp_sync.shared.settings import Settings

if TYPE_CHECKING:
    from erp_sync.ingress.door import Door
    from erp_sync.ingress.stock_desk import StockDesk

# After SIGTERM, requests under way get this long to finish before their worker is killed.
GRACEFUL_TIMEOUT_S = 20
# The async connections an API worker reads stock on (ingress/stock_desk.py), besides its Flask pool.
STOCK_DESK_CONNECTIONS = 4
# Connections one worker holds at once (granian's backpressure): slow clients are cut after the
# read timeout, so this bounds memory, not threads.
CONNECTIONS_PER_WORKER = 2048


@dataclass(frozen=True)
class Listener:
    """Where one audience's app listens, and how many processes and threads serve it."""

    host: str
    port: int
    workers: int
    threads: int
    port_setting: str = "INGRESS_PORT"  # where the port comes from when --port does not say
    # INGRESS_TLS_* are the door's: a shared environment gave the API the ERP-facing certificate too.
    serves_tls: bool = False


def door_listener(settings: Settings, port: int | None = None) -> Listener:
    return Listener(settings.ingress_host, port or settings.ingress_port, settings.ingress_workers,
                    settings.ingress_threads, serves_tls=True)


def api_listener(settings: Settings, port: int | None = None) -> Listener:
    return Listener(settings.api_host, port or settings.api_port, settings.api_workers, settings.api_threads, "API_PORT")


def server_options(settings: Settings, listener: Listener | None = None) -> dict[str, Any]:
    """The granian settings erp-sync runs with; the benchmark reuses them for its bare endpoint."""
    listener = listener or door_listener(settings)
    options: dict[str, Any] = {
        "address": listener.host,
        "port": listener.port,
        "interface": Interfaces.RSGI,
        # Named, not "auto" (which would take whichever loop happens to be installed): the door's
        # webhooks run on this loop, and uvloop spends about a fifth less CPU on each than asyncio's.
        "loop": Loops.uvloop,
        "http": HTTPModes.http1,
        "websockets": False,
        "workers": listener.workers,
        "backlog": max(1024, CONNECTIONS_PER_WORKER * listener.workers),
        "backpressure": CONNECTIONS_PER_WORKER,
        "http1_settings": HTTP1Settings(header_read_timeout=round(settings.http_read_timeout_s * 1000)),
        # A worker that dies is replaced, as gunicorn did; one that keeps dying stops the server.
        "respawn_failed_workers": True,
        "workers_kill_timeout": GRACEFUL_TIMEOUT_S,
        "log_level": LogLevels(settings.log_level.lower()),
        # granian's own lines go through the root logger (shared/logs.py: escaped, one format).
        "log_dictconfig": {"version": 1, "disable_existing_loggers": False,
                           "loggers": {"_granian": {"propagate": True}}},
    }
    if listener.serves_tls and settings.ingress_tls_certfile and settings.ingress_tls_keyfile:
        check_tls_files(Path(settings.ingress_tls_certfile), Path(settings.ingress_tls_keyfile))
        options["ssl_cert"] = Path(settings.ingress_tls_certfile)
        options["ssl_key"] = Path(settings.ingress_tls_keyfile)
        # A legacy ERP may not speak TLS 1.3; 1.2 is what the threaded server accepted too.
        options["ssl_protocol_min"] = SSLProtocols.tls12
    return options


def load_bridge(app_factory: Callable[[], Flask], settings: Settings, threads: int) -> WsgiBridge:
    """Build the app in the worker process (after the fork): its publisher is this process's own."""
    return _bridge(_built(app_factory), settings, threads)


def _built(app_factory: Callable[[], Flask]) -> Flask:
    app = app_factory()
    freeze_what_is_loaded()
    return app


def _bridge(app: Flask, settings: Settings, threads: int) -> WsgiBridge:
    # Each app bounds its own bodies (the door's webhook, the API's console form): no more is read.
    return WsgiBridge(app, threads=threads, body_timeout_s=settings.http_read_timeout_s,
                      max_body_bytes=app.config["MAX_CONTENT_LENGTH"] or settings.webhook_max_body_bytes,
                      on_close=partial(extensions.close, app), on_the_loop={LIVENESS_PATH: ALIVE_ANSWER})


def load_door(app_factory: Callable[[], Flask], settings: Settings, threads: int) -> Door:
    """The door's app with the webhook taken on the worker's event loop, by a publisher of that loop."""
    # Imported here, in the worker: the metrics it defines must see PROMETHEUS_MULTIPROC_DIR, set by serve().
    from erp_sync.ingress.door import Door

    app = _built(app_factory)
    publisher = LoopPublisher(settings.amqp_url, confirm_timeout_s=settings.publish_confirm_timeout_s)
    return Door(app, _bridge(app, settings, threads), publisher, stop_timeout_s=GRACEFUL_TIMEOUT_S)


def load_stock_desk(app_factory: Callable[[], Flask], settings: Settings, threads: int) -> StockDesk:
    """The storefront API's app with its usual stock read taken on the worker's event loop."""
    from erp_sync.ingress.stock_desk import StockDesk

    app = _built(app_factory)
    return StockDesk(app, _bridge(app, settings, threads), settings.database_url, pool_size=STOCK_DESK_CONNECTIONS)


Loader = Callable[[Callable[[], Flask], Settings, int], object]


def serve(settings: Settings, app_factory: Callable[[], Flask], listener: Listener,
          loader: Loader = load_bridge, *, reads_the_schema: bool = False) -> None:
    """Run granian in the foreground until SIGTERM or SIGINT; `loader` builds the RSGI app in each worker.

    `reads_the_schema`: the app reads erp-sync's tables, and refuses to start on a schema behind its
    release, as the workers do. Started before `erp-sync migrate`, the API answered reads of a column
    the migration adds 503 "database unavailable". (The door does not: it serves without the database.)
    """
    amqp_parameters(settings.amqp_url)  # an AMQP_URL pika cannot read stops us here, not in each worker
    if (why := why_unusable(listener.host, listener.port)) is not None:
        raise ConfigurationError(f"port {listener.port} on {listener.host} {why}: choose another with --port N "
                                 f"or {listener.port_setting}")
    if reads_the_schema:
        require_current_schema(settings.database_url)
    # Must be set before any worker defines its metrics, so /metrics adds up all workers.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="erp-sync-metrics-"))
    server = MPServer(target="erp-sync", **server_options(settings, listener))
    target = partial(loader, app_factory, settings, listener.threads)
    # granian's type says "a callable"; any object with __rsgi__ is an RSGI app to it.
    server.serve(target_loader=cast("Callable[[], Callable[..., Any]]", target), wrap_loader=False)


def serve_door(settings: Settings, port: int | None = None) -> None:
    """`erp-sync ingress`: the ERP's door."""
    from erp_sync.ingress import create_app

    settings.webhook_secrets()  # refuse to start without a secret, before forking anything
    serve(settings, partial(create_app, settings), door_listener(settings, port), load_door)


def serve_api(settings: Settings, port: int | None = None) -> None:
    """`erp-sync api`: the storefront's read API."""
    from erp_sync.ingress.storefront import create_api_app

    settings.storefront_tokens()  # refuse to start without a token, before forking anything
    serve(settings, partial(create_api_app, settings), api_listener(settings, port), load_stock_desk,
          reads_the_schema=True)
