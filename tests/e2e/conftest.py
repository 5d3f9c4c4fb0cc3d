"""Fixtures of the end-to-end tier: the services, the ingress and workers on them, and the orders' ERP."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from erp_sync.ingress import create_app, extensions
from erp_sync.ingress.storefront import create_api_app
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.workers.registry import WORKERS
from erp_sync.workers.runner import run_worker
from tests.support.db_fixtures import committed_session, db_engine, db_session, migrated_database_url  # noqa: F401
from tests.support.image_server import image_server  # noqa: F401
from tests.support.service_fixtures import *  # noqa: F403 (the service fixtures)
from tests.support.factories import inventory_event
from tests.support.orders import SKU, purge_order_delays, stock_history
from tests.support.sandbox import TOKEN, running_sandbox
from tests.support.storefront import Edges, api_client
from tests.support.waiting import wait_for
from tests.support.webhooks import post


@pytest.fixture
def ingress(settings):
    """erp-sync's HTTP edges on the run's broker and database: posts go to the ERP's door, reads to the API."""
    door, api = create_app(settings), create_api_app(settings)
    yield Edges(door.test_client(), api_client(api))
    for app in (door, api):
        extensions.close(app)


@pytest.fixture
def start_workers(settings, broker, committed_session):
    """Start real worker consumers (in threads) on the run's broker and database."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(*names: str, with_settings=None) -> None:
        for name in names:
            stop = threading.Event()
            thread = threading.Thread(target=run_worker, args=(WORKERS[name], with_settings or settings, stop),
                                      name=f"worker {name}", daemon=True)
            thread.start()
            running.append((stop, thread))

    yield start
    for stop, _ in running:
        stop.set()
    for _, thread in running:
        thread.join(timeout=15)
    # A worker still running would go on consuming the next test's messages in this process.
    lingering = [thread.name for _, thread in running if thread.is_alive()]
    assert not lingering, f"worker threads still running 15 s after their stop: {lingering}"


@pytest.fixture
def sandbox(tmp_path):
    with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
def order_settings(settings_factory, sandbox, broker):
    purge_order_delays(broker)

    def build(**overrides):
        values = {"erp_base_url": sandbox.url, "erp_api_token": TOKEN, "order_retry_interval_s": 1,
                  "order_retry_window_s": 3, "erp_quick_retries": 2, "erp_quick_retry_base_s": 0.01,
                  "erp_connect_timeout_s": 1, "erp_read_timeout_s": 3, "erp_probe_interval_s": 0.5, **overrides}
        return settings_factory(**values)

    yield build
    purge_order_delays(broker)


@pytest.fixture
def storefront(broker):
    publisher = ConfirmingPublisher(broker)
    yield publisher
    publisher.close()


@pytest.fixture
def stock_of_50(ingress, start_workers, settings):
    # The ERP's figure of 50 for the SKU, through the webhook path, so "available" has a base.
    # Stamped seconds before any order of the test: a figure stamped in the second the ERP receives an
    # order may count it (whole-second ERP clocks cannot tell), and would end its hold (README, holds).
    start_workers("inventory")
    seed = inventory_event(new_quantity=50, sku=SKU)
    seed["timestamp"] = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post(ingress, seed)
    try:
        wait_for(lambda: (shown := ingress.get(f"/api/v1/inventory/{SKU}")).status_code == 200
                 and shown.get_json()["erp_quantity"] == 50)
    except AssertionError:
        raise AssertionError(f"the seed of 50 did not stand; {SKU}'s figures: {stock_history(ingress)}") from None
