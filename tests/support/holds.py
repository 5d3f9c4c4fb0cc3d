"""Holds against a sandbox ERP that fires its figures at a served door, and a watcher of what the shop shows."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from erp_sync.ingress import create_app
from erp_sync.shared.orders import publish_order
from tests.support.factories import inventory_event
from tests.support.orders import SKU, order, wait_status
from tests.support.sandbox import ADMIN_TOKEN, Sandbox, running_sandbox, serving
from tests.support.settings import WEBHOOK_SECRET
from tests.support.waiting import wait_for
from tests.support.webhooks import post

START = 50


@contextmanager
def firing_sandbox(settings, tmp_path, *, webhook_delay_s: float = 0.0, **options: Any) -> Iterator[Sandbox]:
    """A sandbox ERP whose stock events reach a served door (each held `webhook_delay_s` on its way)."""
    door = create_app(settings)
    if webhook_delay_s:
        app = door.wsgi_app

        def slow(environ, start_response):
            time.sleep(webhook_delay_s)
            return app(environ, start_response)

        door.wsgi_app = slow
    try:
        with serving(door) as door_url, running_sandbox(
                tmp_path, webhook_url=f"{door_url}/webhooks/erp", webhook_secret=WEBHOOK_SECRET,
                start_dispatcher=True, **options) as sandbox:
            yield sandbox
    finally:
        door.extensions["erp_sync.publisher"].close()


def without_its_clock(sandbox: Sandbox) -> None:
    """The ERP's answers carry no readable `Date`: the orders worker falls back on ERP_CLOCK_SKEW_S."""
    app = sandbox.app.wsgi_app

    def dateless(environ, start_response):
        def start(status, headers, *rest):
            return start_response(status, [(k, "") if k.lower() == "date" else (k, v) for k, v in headers], *rest)
        return app(environ, start)

    sandbox.app.wsgi_app = dateless


def inventory(ingress) -> dict:
    return ingress.get(f"/api/v1/inventory/{SKU}").get_json()


def seed(ingress, quantity: int = START) -> None:
    event = inventory_event(new_quantity=quantity, sku=SKU)
    # an hour old: older than anything the ERP fires during the test
    event["timestamp"] = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    post(ingress, event)
    wait_for(lambda: ingress.get(f"/api/v1/inventory/{SKU}").status_code == 200)


def sell_in_store(sandbox: Sandbox, sales: int) -> None:
    for _ in range(sales):
        requests.post(f"{sandbox.url}/admin/sale", json={"sku": SKU, "quantity": 1},
                      headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)


@contextmanager
def watching_for_oversell(sandbox: Sandbox, ingress) -> Iterator[list[dict]]:
    """Samples of the read API showing more than the ERP can still sell, collected while the block runs.

    Sales only lower the figure, so every order the ERP took must stay either held or in the figure:
    available above START minus the orders taken means a hold ended before its order was counted.
    """
    breaches: list[dict] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            taken = len(sandbox.orders())
            shown = inventory(ingress)
            if shown["available"] > START - taken:
                breaches.append({"shown": shown, "taken": taken})

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        yield breaches
    finally:
        done.set()
        watcher.join()


def store_sales_beside_online_orders(sandbox: Sandbox, storefront, ingress, count: int = 10) -> None:
    """`count` store sales and `count` online orders of one unit at once; returns once every order synced."""
    seller = threading.Thread(target=sell_in_store, args=(sandbox, count))
    seller.start()
    for n in range(count):
        publish_order(storefront, order(f"ORD-RACE-{n}", quantity=1))
    seller.join()
    for n in range(count):
        wait_status(ingress, f"ORD-RACE-{n}", "synced")
