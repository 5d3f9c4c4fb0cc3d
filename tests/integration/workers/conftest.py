"""Fixtures of the workers' integration tests: an image server, a sandbox ERP holding given stock, sweep settings."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from erp_sync.shared.consumer import BatchRunner, ConsumerConfig
from erp_sync.shared.settings import load_settings
from erp_sync.workers import catalog, inventory
from tests.support.image_server import image_server  # noqa: F401
from tests.support.reconcile import TOKEN, erp  # noqa: F401


@pytest.fixture
def sweep_settings(settings_factory):
    def build(url: str, **overrides: object):
        # The change limits off unless a test sets them: a handful of SKUs is no broken export.
        limits_off = {f"reconcile_max_{limit}_share": 1.0 for limit in ("changed", "zeroed", "missing")}
        return settings_factory(**{"erp_base_url": url, "erp_api_token": TOKEN} | limits_off | overrides)

    return build


def batch_runner(request, db_engine, migrated_database_url, worker):
    """The consumer's BatchRunner with `worker`'s real handlers (its batch handler when the param says so),
    its transactions rolled back at the end."""
    connection = db_engine.connect()
    outer = connection.begin()
    sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    settings = load_settings(database_url=migrated_database_url)
    batch_handler = worker.build_batch_handler(settings) if request.param == "with batch handler" else None
    config = ConsumerConfig(amqp_url="amqp://unused", retry_delays_ms=(200, 400), max_attempts=5)
    yield BatchRunner(worker.build_handler(settings), sessions, config, batch_handler), sessions
    outer.rollback()
    connection.close()


@pytest.fixture(params=["per-message handler", "with batch handler"])
def runner(request, db_engine, migrated_database_url):
    """The inventory worker's BatchRunner (`batch_runner`)."""
    yield from batch_runner(request, db_engine, migrated_database_url, inventory)


@pytest.fixture(params=["per-message handler", "with batch handler"])
def catalog_runner(request, db_engine, migrated_database_url):
    """The catalog worker's BatchRunner (`batch_runner`)."""
    yield from batch_runner(request, db_engine, migrated_database_url, catalog)
