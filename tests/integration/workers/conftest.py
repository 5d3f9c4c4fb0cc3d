"""Fixtures of the workers' integration tests: an image server, a sandbox ERP holding given stock, sweep settings."""
from __future__ import annotations

import pytest

from erp_sync.workers import catalog, inventory
from tests.support.batch_runner import batch_runner
from tests.support.image_server import image_server  # noqa: F401
from tests.support.reconcile import TOKEN, erp  # noqa: F401


@pytest.fixture
def sweep_settings(settings_factory):
    def build(url: str, **overrides: object):
        # The change limits off unless a test sets them: a handful of SKUs is no broken export.
        limits_off = {f"reconcile_max_{limit}_share": 1.0 for limit in ("changed", "zeroed", "missing")}
        return settings_factory(**{"erp_base_url": url, "erp_api_token": TOKEN} | limits_off | overrides)

    return build


@pytest.fixture(params=["per-message handler", "with batch handler"])
def runner(request, db_engine, migrated_database_url):
    """The inventory worker's BatchRunner (`batch_runner`)."""
    yield from batch_runner(request, db_engine, migrated_database_url, inventory)


@pytest.fixture(params=["per-message handler", "with batch handler"])
def catalog_runner(request, db_engine, migrated_database_url):
    """The catalog worker's BatchRunner (`batch_runner`)."""
    yield from batch_runner(request, db_engine, migrated_database_url, catalog)
