"""Fixtures of the sandbox ERP's integration tests: its app, and the app served on loopback."""
from __future__ import annotations

from tests.support.sandbox_fixtures import app, catalog_file, client, live, make_app  # noqa: F401
