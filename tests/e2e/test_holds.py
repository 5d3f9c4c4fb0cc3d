"""Holds end when the ERP's own figure for the order is applied: the sandbox ERP fires it over HTTP at a served door."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from erp_sync.ingress import create_app
from erp_sync.shared.orders import publish_order
from tests.support.factories import inventory_event
from tests.support.orders import SKU, order, wait_status
from tests.support.sandbox import ADMIN_TOKEN, running_sandbox, serving
from tests.support.settings import WEBHOOK_SECRET
from tests.support.waiting import wait_for
from tests.support.webhooks import post


@pytest.fixture(params=["s", "ms"])
def firing_sandbox(request, settings, tmp_path):
    """A sandbox ERP whose stock events reach a served door, stamped in whole seconds or milliseconds."""
    door = create_app(settings)
    try:
        with serving(door) as door_url, running_sandbox(
                tmp_path, webhook_url=f"{door_url}/webhooks/erp", webhook_secret=WEBHOOK_SECRET,
                start_dispatcher=True, timestamp_precision=request.param) as sandbox:
            yield sandbox
    finally:
        door.extensions["erp_sync.publisher"].close()


def inventory(ingress) -> dict:
    return ingress.get(f"/api/v1/inventory/{SKU}").get_json()


def seed_50(ingress) -> None:
    event = inventory_event(new_quantity=50, sku=SKU)
    # an hour old: older than anything the ERP fires during the test
    event["timestamp"] = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post(ingress, event)
    wait_for(lambda: ingress.get(f"/api/v1/inventory/{SKU}").status_code == 200)


def test_the_erps_figure_for_an_order_ends_its_hold(ingress, storefront, start_workers, order_settings,
                                                    firing_sandbox):
    # given the ERP's figure of 50 and both workers
    start_workers("inventory")
    seed_50(ingress)
    start_workers("orders", with_settings=order_settings(erp_base_url=firing_sandbox.url))

    # when an order of 2 syncs and the ERP fires its figure of 48
    publish_order(storefront, order("ORD-HOLD-1", quantity=2))
    wait_status(ingress, "ORD-HOLD-1", "synced")

    # then the shop shows the ERP's figure, the order counted once
    wait_for(lambda: inventory(ingress) | {"updated_at": None}
             == {"sku": SKU, "erp_quantity": 48, "reserved": 0, "available": 48, "updated_at": None}, 2.0)


def test_a_figure_before_the_order_is_marked_synced_still_ends_its_hold(ingress, storefront, start_workers,
                                                                        order_settings, firing_sandbox):
    # given the inventory worker applies figures while the orders worker is not yet running
    start_workers("inventory")
    seed_50(ingress)
    publish_order(storefront, order("ORD-HOLD-2", quantity=2))

    # when the ERP takes the order and its figure is applied, and only then the push is recorded
    # (the orders worker's answer commits after the ERP fired: its figure may well come first)
    start_workers("orders", with_settings=order_settings(erp_base_url=firing_sandbox.url))
    wait_status(ingress, "ORD-HOLD-2", "synced")

    # then the hold ends whichever came first
    wait_for(lambda: inventory(ingress)["reserved"] == 0 and inventory(ingress)["available"] == 48, 2.0)


def test_concurrent_store_sales_never_end_a_hold_early(ingress, storefront, start_workers, order_settings,
                                                      firing_sandbox):
    # given 50 in stock, both workers, and store sales running beside online orders
    start_workers("inventory")
    seed_50(ingress)
    start_workers("orders", with_settings=order_settings(erp_base_url=firing_sandbox.url))
    breaches: list[dict] = []
    done = threading.Event()

    def sell() -> None:
        for _ in range(10):
            requests.post(f"{firing_sandbox.url}/admin/sale", json={"sku": SKU, "quantity": 1},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)

    def watch() -> None:
        # Sales only lower the figure, so every order the ERP took must stay either held or in the figure:
        # available above 50 minus the orders taken means a hold ended before its order was counted.
        while not done.is_set():
            taken = len(firing_sandbox.orders())
            shown = inventory(ingress)
            if shown["available"] > 50 - taken:
                breaches.append({"shown": shown, "taken": taken})

    seller, watcher = threading.Thread(target=sell), threading.Thread(target=watch)
    watcher.start()
    seller.start()
    for n in range(10):
        publish_order(storefront, order(f"ORD-RACE-{n}", quantity=1))
    seller.join()
    for n in range(10):
        wait_status(ingress, f"ORD-RACE-{n}", "synced")

    # then at the end the shop shows the ERP's figure, and never showed more than it had
    wait_for(lambda: inventory(ingress)["reserved"] == 0 and inventory(ingress)["available"] == 30, 2.0)
    done.set()
    watcher.join()
    assert breaches == []
