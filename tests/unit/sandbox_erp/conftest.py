"""Fixtures of the sandbox ERP's unit tests: its app and a test client of it, no server."""
from __future__ import annotations

from tests.support.sandbox_fixtures import app, catalog_file, client, make_app  # noqa: F401
