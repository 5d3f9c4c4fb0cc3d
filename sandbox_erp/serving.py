"""Serving the sandbox: a threaded werkzeug server, over TLS when asked, or granian keeping connections alive."""
from __future__ import annotations

import logging
import re
import signal
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from erp_sync.sandbox_erp.app import create_app, set_public_url, shutdown
from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.sandbox_erp.exposure import check_exposure
from erp_sync.sandbox_erp.settings import DEFAULT_PORT, config_from_env
from erp_sync.shared.errors import ConfigurationError

logger = logging.getLogger("sandbox_erp")


# The colour codes werkzeug wraps a request line in; it escapes the client's own control characters first.
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


class PlainRequestHandler(WSGIRequestHandler):
    """werkzeug's request lines without their colour codes: logs end up in files and collectors too."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 (werkzeug's name)
        super().log(type, message, *(_COLOURS.sub("", arg) if isinstance(arg, str) else arg for arg in args))


def run_sandbox(port: int = DEFAULT_PORT, host: str = "127.0.0.1", tls: bool = False,
                config: SandboxConfig | None = None, ca_file: Path | None = None, keep_alive: bool = False) -> None:
    """Serve the sandbox ERP in the foreground until SIGINT or SIGTERM.

    Raises:
        ConfigurationError: asked to listen beyond loopback with a well-known token or secret, or to
            keep connections alive over TLS.
    """
    config = config or config_from_env()
    check_exposure(host, config)
    if keep_alive:
        if tls:
            raise ConfigurationError("--keep-alive serves plain HTTP only: leave out --tls or --keep-alive")
        if port == 0:
            raise ConfigurationError("--keep-alive needs a port of its own: give --port a number above 0")
        _serve_kept_alive(port, host, config)
        return
    app = create_app(config)
    context = None
    if tls:
        from erp_sync.sandbox_erp.tls import server_context

        ca_file = ca_file or Path("sandbox-erp-ca.pem").resolve()
        context = server_context(ca_file)
    # The werkzeug server (not gunicorn): one process keeps an in-memory store and the fault
    # switches shared by every request, and "down" can drop a raw socket.
    server: BaseWSGIServer = make_server(host, port, app, threaded=True, ssl_context=context,
                                         request_handler=PlainRequestHandler)
    url = f"{'https' if tls else 'http'}://{host}:{server.server_port}"
    if config.public_url is None:
        set_public_url(app, url)
    print(f"sandbox ERP listening on {url}", flush=True)
    if ca_file is not None and tls:
        print(f"sandbox ERP CA certificate: {ca_file}", flush=True)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        shutdown(app)


# The push threads of two orders workers at the default ORDER_PUSH_CONCURRENCY (8), their probes, and
# room for the admin calls: requests `slow` holds up take threads too, and past this many they
# hold up the very call that would release them.
_KEPT_ALIVE_THREADS = 32
# A request `slow` holds up would keep granian's worker from stopping; past this it is killed.
_STOP_TIMEOUT_S = 5


def _serve_kept_alive(port: int, host: str, config: SandboxConfig) -> None:
    # werkzeug closes every connection after its answer; an ERP in production keeps them, and a
    # client then spends no connect, accept and close per call. granian serves one process here
    # (one in-memory store); it hands the app no raw socket, so `down` and `lost` answer 503 and
    # close the connection instead of dropping it unanswered (faults.py). granian has no hook at a
    # worker's exit, so the store is not closed there: its transactions are committed as they go.
    from granian.constants import Interfaces
    from granian.server import MPServer

    server = MPServer(target="sandbox-erp", address=host, port=port, interface=Interfaces.WSGI, workers=1,
                      blocking_threads=_KEPT_ALIVE_THREADS, log_access=False, workers_kill_timeout=_STOP_TIMEOUT_S)
    print(f"sandbox ERP listening on http://{host}:{port}, keeping connections alive (granian)", flush=True)
    server.serve(target_loader=partial(_kept_alive_app, config, f"http://{host}:{port}"), wrap_loader=False)


def _kept_alive_app(config: SandboxConfig, url: str) -> Flask:
    """Built in granian's worker process, where its requests are served."""
    app = create_app(config)
    if config.public_url is None:
        set_public_url(app, url)
    return app
