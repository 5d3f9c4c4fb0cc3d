"""Fixtures on the sandbox ERP: its app with the test catalog, a test client of it, and the app served on loopback."""
from __future__ import annotations

import json

import pytest

from erp_sync.sandbox_erp import SandboxConfig, create_app, shutdown
from tests.support.sandbox import ADMIN_TOKEN, CATALOG, TOKEN, serving


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


@pytest.fixture
def live(app):
    with serving(app) as url:
        yield url
