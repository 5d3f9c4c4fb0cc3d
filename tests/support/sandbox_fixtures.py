from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from erp_sync.sandbox_erp import SandboxConfig, create_app, set_public_url, shutdown

TOKEN = "sandbox-test-token"
ADMIN_TOKEN = "sandbox-admin-token"
SECRET = "sandbox-webhook-secret"

CATALOG = [
    {
        "product_group_id": "PG-1001",
        "group_name": "iPhone 15",
        "description": "<p>Full HTML...</p>",
        "category_hierarchy": ["Electronics", "Smartphones", "Apple"],
        "tax_hsn": "85171300",
        "is_active": True,
        "variants": [
            {"sku": "IPH15-128-BLK", "display_name": "iPhone 15 128GB Black", "price": 79900.00, "mrp": 89900.00,
             "stock_quantity": 50, "attributes": {"Color": "Black", "Storage": "128GB"},
             "media": [{"url": "https://erp-cdn.com/u/iph15-blk.jpg", "is_main": True}]},
            {"sku": "IPH15-128-BLU", "display_name": "iPhone 15 128GB Blue", "price": 79900.00,
             "stock_quantity": 42, "attributes": {"Color": "Blue", "Storage": "128GB"},
             "media": [{"url": "https://erp-cdn.com/u/iph15-blu.jpg", "is_main": True}]},
        ],
    }
]


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def catalog_file(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(CATALOG))
    return path


@pytest.fixture
def make_app(tmp_path, catalog_file):
    apps = []

    def build(**overrides):
        options = {"api_token": TOKEN, "admin_token": ADMIN_TOKEN, "catalog_file": catalog_file,
                   "export_dir": tmp_path, **overrides}
        app = create_app(SandboxConfig(**options))
        apps.append(app)
        return app

    yield build
    for app in apps:
        shutdown(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


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


@pytest.fixture
def live(app):
    with serving(app) as url:
        yield url
