"""A sandbox ERP served over real HTTP for the orders tests, with its admin API at hand (no tests here)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask

from erp_sync.sandbox_erp import SandboxConfig, create_app, shutdown
from tests.sandbox_erp.conftest import ADMIN_TOKEN, CATALOG, TOKEN, serving


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
              reject_skus: list[str] | None = None) -> None:
        self._admin("PUT", "/faults", {"mode": mode, "status": status, "delay_ms": delay_ms,
                                       "reject_skus": reject_skus or []})


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
