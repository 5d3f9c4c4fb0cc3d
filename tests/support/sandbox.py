"""The sandbox ERP for tests: its tokens and catalog, served over real HTTP, with its admin API at hand."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from werkzeug.serving import make_server

from erp_sync.sandbox_erp import SandboxConfig, create_app, set_public_url, shutdown
from tests.support.factories import catalog_event

TOKEN = "sandbox-test-token"
ADMIN_TOKEN = "sandbox-admin-token"
SECRET = "sandbox-webhook-secret"

# The spec's example group (3.1), as the sandbox's catalog file holds it.
CATALOG = [catalog_event()["data"]]


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(app, ssl_context=None) -> Iterator[str]:
    """The app on a real threaded werkzeug server on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=ssl_context)
    scheme = "https" if ssl_context else "http"
    url = f"{scheme}://127.0.0.1:{server.server_port}"
    if "sandbox_erp.ledger" in app.extensions:
        set_public_url(app, url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(5)


def admin(client, verb, body):
    """Call the admin API of a sandbox test client; insist it succeeded."""
    response = client.post(f"/admin/{verb}", json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def deliveries(client):
    return client.get("/admin/deliveries", headers=bearer(ADMIN_TOKEN)).get_json()


@dataclass
class Sandbox:
    url: str
    app: Flask

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        answer = requests.request(method, f"{self.url}/admin{path}", json=body,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def stock(self, sku: str) -> int:
        return int(self._admin("GET", f"/stock/{sku}")["qty"])

    def orders(self) -> list[dict[str, Any]]:
        return list(self._admin("GET", "/orders"))

    def fault(self, mode: str = "none", *, status: int = 503, delay_ms: int = 0,
              reject_skus: list[str] | None = None, slow_skus: list[str] | None = None,
              retry_after_s: int | None = None) -> None:
        self._admin("PUT", "/faults", {"mode": mode, "status": status, "delay_ms": delay_ms,
                                       "reject_skus": reject_skus or [], "slow_skus": slow_skus or [],
                                       "retry_after_s": retry_after_s})

    def held(self) -> int:
        """How many requests the `slow` fault holds up now."""
        return int(self._admin("GET", "/faults")["held"])


@contextmanager
def running_sandbox(tmp_path, ssl_context=None, **overrides: Any) -> Iterator[Sandbox]:
    """A sandbox ERP seeded with the test catalog (IPH15-128-BLK: 50, IPH15-128-BLU: 42), no webhooks."""
    catalog = tmp_path / "sandbox-catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    options: dict[str, Any] = {"api_token": TOKEN, "admin_token": ADMIN_TOKEN, "catalog_file": catalog,
                               "export_dir": tmp_path, "webhook_url": None, "start_dispatcher": False, **overrides}
    app = create_app(SandboxConfig(**options))
    try:
        with serving(app, ssl_context) as url:
            yield Sandbox(url, app)
    finally:
        shutdown(app)
