"""Whole flows: a signed webhook in, a real worker applies it, the storefront reads it."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from erp_sync.ingress import create_app
from erp_sync.ingress.storefront import create_api_app
from tests.support.storefront import Edges, api_client
from tests.support.waiting import wait_for
from tests.support.webhooks import post
from tests.support.factories import catalog_event, inventory_event, now_iso
from tests.support.image_server import PNG, running_image_server


def product(client, sku):
    answer = client.get(f"/api/v1/products/{sku}")
    return answer.get_json() if answer.status_code == 200 else None


# The catalog worker applies two batches at once by default, one where CATALOG_BATCH_CONCURRENCY says so.
@pytest.mark.parametrize("batch_concurrency", [2, 1])
def test_spec_catalog_example_shows_up_with_prices_attributes_and_media(ingress, start_workers, settings_factory,
                                                                         batch_concurrency):
    # given the catalog and inventory workers
    start_workers("catalog", "inventory", with_settings=settings_factory(catalog_batch_concurrency=batch_concurrency))

    # when the ERP sends the spec's catalog.update example
    post(ingress, catalog_event())

    # then the storefront shows it as the ERP set it
    black = wait_for(lambda: product(ingress, "IPH15-128-BLK"))
    assert (black["price"], black["mrp"]) == ("79900.00", "89900.00")
    assert black["attributes"] == {"Color": "Black", "Storage": "128GB"}
    assert black["is_active"] is True and black["available"] == 50
    assert black["group"]["group_name"] == "iPhone 15"
    assert black["group"]["category_hierarchy"] == ["Electronics", "Smartphones", "Apple"]
    assert [(m["url"], m["is_main"]) for m in black["media"]] == [
        ("https://erp-cdn.com/u/iph15-blk.jpg", True),
        ("https://erp-cdn.com/u/iph15-blk-back.jpg", False),
    ]
    blue = product(ingress, "IPH15-128-BLU")
    assert (blue["price"], blue["mrp"], blue["available"]) == ("79900.00", None, 42)


def test_operational_scenario_pos_sale_shows_49_left(ingress, start_workers):
    # given the product with 50 in stock
    start_workers("catalog", "inventory")
    post(ingress, catalog_event())
    wait_for(lambda: product(ingress, "IPH15-128-BLK"))

    # when a customer buys one in the store and the ERP fires inventory.change
    post(ingress, inventory_event(sku="IPH15-128-BLK", new_quantity=49, reason="POS_SALE"))

    # then the website shows "49 left"
    stock = wait_for(lambda: (s := ingress.get("/api/v1/inventory/IPH15-128-BLK").get_json())["erp_quantity"] == 49
                     and s)
    assert (stock["available"], stock["reserved"]) == (49, 0)
    assert product(ingress, "IPH15-128-BLK")["available"] == 49


def test_replayed_and_out_of_order_events_change_nothing(ingress, start_workers):
    # given a figure of 49 applied
    start_workers("inventory")
    newest = inventory_event(sku="SKU-REPLAY", new_quantity=49)
    post(ingress, newest)
    wait_for(lambda: ingress.get("/api/v1/inventory/SKU-REPLAY").status_code == 200)

    # when the same event is replayed and an older figure arrives late
    post(ingress, newest)
    older = inventory_event(sku="SKU-REPLAY", new_quantity=50)
    older["timestamp"] = now_iso(timedelta(minutes=-5))
    post(ingress, older)
    marker = inventory_event(sku="SKU-MARKER", new_quantity=1)
    post(ingress, marker)
    wait_for(lambda: ingress.get("/api/v1/inventory/SKU-MARKER").status_code == 200)

    # then the newest figure stays
    assert ingress.get("/api/v1/inventory/SKU-REPLAY").get_json()["erp_quantity"] == 49


@pytest.fixture
def image_server():
    with running_image_server() as server:
        yield server


def test_media_is_downloaded_in_the_background_and_confirmed(settings_factory, start_workers, image_server):
    # given the workers allowed to fetch from this machine (as in development)
    settings = settings_factory(media_allow_private_networks=True)
    door, api = create_app(settings), create_api_app(settings)
    client = Edges(door.test_client(), api_client(api))
    start_workers("catalog", "media", with_settings=settings)
    variant = catalog_event()["data"]["variants"][0]
    variant["media"] = [{"url": f"{image_server.base}/tiny.png", "is_main": True}]

    # when the product arrives
    post(client, catalog_event(variants=[variant]))

    # then its image is fetched and confirmed with its digest
    confirmed = wait_for(lambda: (p := product(client, "IPH15-128-BLK")) and p["media"][0]["status"] == "confirmed"
                         and p)
    media = confirmed["media"][0]
    assert media["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (media["byte_size"], media["content_type"]) == (len(PNG), "image/png")
    assert image_server.hits == {"/tiny.png": 1}
    for app in (door, api):
        app.extensions["erp_sync.publisher"].close()
