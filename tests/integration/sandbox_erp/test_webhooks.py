from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest

from tests.support.sandbox import ADMIN_TOKEN, SECRET, admin, bearer, deliveries


@pytest.fixture
def erp(make_app, stub):
    def build(time_scale=1.0, **overrides):
        app = make_app(webhook_url=stub.url, webhook_secret=SECRET, time_scale=time_scale, **overrides)
        return app.test_client()

    return build


def test_in_store_sale_fires_a_signed_absolute_inventory_change(erp, stub):
    client = erp()

    admin(client, "sale", {"sku": "IPH15-128-BLK", "quantity": 2})

    [arrival] = stub.wait_for(1)
    assert arrival.headers["Content-Type"] == "application/json"
    expected = hmac.new(SECRET.encode(), arrival.body, hashlib.sha256).hexdigest()
    assert arrival.headers["X-Erp-Signature"] == expected
    event = json.loads(arrival.body)
    assert event["event_type"] == "inventory.change"
    assert event["data"] == {"sku": "IPH15-128-BLK", "new_quantity": 48, "reason": "POS_SALE", "location_id": "WH-MAIN"}
    sent = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(sent.timestamp() - time.time()) < 5


@pytest.mark.parametrize(
    "verb, body, reason, qty",
    [
        ("receipt", {"sku": "IPH15-128-BLU", "quantity": 8}, "GOODS_RECEIPT", 50),
        ("adjust", {"sku": "IPH15-128-BLU", "new_quantity": 7}, "STOCK_ADJUSTMENT", 7),
        ("adjust", {"sku": "IPH15-128-BLU", "quantity_change": -2}, "STOCK_ADJUSTMENT", 40),
    ],
)
def test_stock_operations_fire_the_new_total(erp, stub, verb, body, reason, qty):
    client = erp()

    assert admin(client, verb, body)["qty"] == qty

    event = json.loads(stub.wait_for(1)[0].body)
    assert (event["data"]["new_quantity"], event["data"]["reason"]) == (qty, reason)


def test_price_change_fires_the_full_group(erp, stub):
    client = erp()

    admin(client, "price", {"sku": "IPH15-128-BLU", "price": 74900.50, "mrp": 84900})

    event = json.loads(stub.wait_for(1)[0].body)
    assert event["event_type"] == "catalog.update"
    assert event["data"]["product_group_id"] == "PG-1001"
    variants = {v["sku"]: v for v in event["data"]["variants"]}
    assert set(variants) == {"IPH15-128-BLK", "IPH15-128-BLU"}
    assert (variants["IPH15-128-BLU"]["price"], variants["IPH15-128-BLU"]["mrp"]) == (74900.5, 84900)
    assert variants["IPH15-128-BLK"]["stock_quantity"] == 50


def test_new_product_fires_catalog_update_and_joins_the_stock(erp, stub):
    client = erp()

    group = admin(client, "products", {})

    event = json.loads(stub.wait_for(1)[0].body)
    assert event["data"] == group
    assert len(group["variants"]) == 3
    variant = group["variants"][0]
    assert variant["media"][0]["url"].endswith(f"/media/{variant['sku']}.png")
    assert str(variant["price"]).count(".") <= 1 and round(variant["price"], 2) == variant["price"]
    assert client.get(f"/admin/stock/{variant['sku']}", headers=bearer(ADMIN_TOKEN)).status_code == 200


def test_orders_from_the_shop_fire_inventory_change_too(erp, stub):
    client = erp()

    client.post("/api/v1/orders/import", headers=bearer(),
                json={"order_id": "O-9", "line_items": [{"sku": "IPH15-128-BLK", "quantity": 1}]})

    event = json.loads(stub.wait_for(1)[0].body)
    assert event["data"]["new_quantity"] == 49 and event["data"]["reason"] == "ONLINE_ORDER"


def test_event_ids_are_unique(erp, stub):
    client = erp()
    for _ in range(5):
        admin(client, "sale", {"sku": "IPH15-128-BLK"})

    ids = {json.loads(a.body)["event_id"] for a in stub.wait_for(5)}

    assert len(ids) == 5


def test_5xx_is_retried_on_the_scaled_schedule(erp, stub):
    # given an ingress answering 503 twice then 202, and a clock a thousand times faster
    stub.statuses = [503, 503, 202]
    client = erp(time_scale=0.001)

    # when a sale fires a webhook
    admin(client, "sale", {"sku": "IPH15-128-BLK"})

    # then it arrives three times, 60 ms then 300 ms apart (1 min and 5 min, scaled)
    arrivals = stub.wait_for(3)
    gaps = [b.at - a.at for a, b in zip(arrivals, arrivals[1:])]
    # (never early; late only by what a loaded machine adds)
    assert 0.055 <= gaps[0] < 0.5
    assert 0.29 <= gaps[1] < 1.5
    assert len({a.body for a in arrivals}) == 1
    time.sleep(0.5)
    assert len(stub.arrivals) == 3
    [delivery] = deliveries(client)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 3


def test_400_is_a_data_error_and_not_retried(erp, stub, caplog):
    stub.statuses = [400]
    client = erp(time_scale=0.001)

    admin(client, "sale", {"sku": "IPH15-128-BLK"})

    stub.wait_for(1)
    time.sleep(0.5)
    assert len(stub.arrivals) == 1
    [delivery] = deliveries(client)
    assert (delivery["status"], delivery["last_status"]) == ("data_error", 400)
    assert any("data error" in record.getMessage() for record in caplog.records)


def test_still_failing_after_24h_scaled_raises_an_admin_alert(erp, stub, caplog):
    # given an ingress that never recovers, and 24 h scaled down to 1.728 s
    stub.statuses = [503]
    client = erp(time_scale=0.00002)

    sold_at = time.time()
    admin(client, "sale", {"sku": "IPH15-128-BLK"})
    deadline = time.time() + 5
    while time.time() < deadline and not client.get("/admin/alerts", headers=bearer(ADMIN_TOKEN)).get_json():
        time.sleep(0.05)

    # then one alert, after retries that stopped at the horizon
    [alert] = client.get("/admin/alerts", headers=bearer(ADMIN_TOKEN)).get_json()
    [delivery] = deliveries(client)
    assert alert["event_id"] == delivery["event_id"]
    assert delivery["status"] == "failed"
    # never given up before the horizon (its exact schedule is a unit test's; a loaded machine only adds lateness)
    assert stub.arrivals[-1].at - sold_at >= 86400 * 0.00002 - 0.01  # (a timer may fire a hair early)
    assert len(stub.arrivals) >= 3
    assert any("ADMIN ALERT" in record.getMessage() for record in caplog.records)
    count = len(stub.arrivals)
    time.sleep(0.5)
    assert len(stub.arrivals) == count


def test_connection_errors_are_retried(make_app, stub):
    # given the ingress is unreachable at first
    from tests.support.cli import free_port

    client = make_app(webhook_url=f"http://127.0.0.1:{free_port()}/webhooks/erp", webhook_secret=SECRET,
                      time_scale=0.001).test_client()

    admin(client, "sale", {"sku": "IPH15-128-BLK"})
    deadline = time.monotonic() + 10
    while (delivery := deliveries(client)[0])["attempts"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)

    assert delivery["status"] == "pending" and delivery["attempts"] >= 2
    assert "ConnectionError" in delivery["last_error"]


def test_webhooks_go_out_several_at_once_when_asked_and_each_is_delivered_once(erp, stub):
    client = erp(webhook_concurrency=8)
    for _ in range(40):
        admin(client, "receipt", {"sku": "IPH15-128-BLK", "quantity": 1})

    arrived = [json.loads(a.body)["event_id"] for a in stub.wait_for(40)]

    assert len(arrived) == len(set(arrived)) == 40
    deadline = time.monotonic() + 10
    while {d["status"] for d in deliveries(client)} != {"delivered"} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert {d["status"] for d in deliveries(client)} == {"delivered"}
