from __future__ import annotations

import json

import pytest

from erp_sync.sandbox_erp.settings import config_from_env

from tests.support.sandbox import ADMIN_TOKEN, TOKEN, bearer

ORDER = {
    "order_id": "ORD-WEB-1001",
    "order_date": "2024-01-20T10:15:00Z",
    "customer_ref": "CUST-555",
    "line_items": [{"sku": "IPH15-128-BLK", "quantity": 2, "unit_price": 79900.00}],
}
ADJUST = {
    "reference_id": "ORD-WEB-2001",
    "adjustments": [{"sku": "IPH15-128-BLU", "quantity_change": -3, "warehouse_id": "WH-MAIN"}],
}


def stock(client, sku):
    return client.get(f"/admin/stock/{sku}", headers=bearer(ADMIN_TOKEN)).get_json()["qty"]


@pytest.mark.parametrize("path, body", [("/api/v1/orders/import", ORDER), ("/api/v1/inventory/adjust", ADJUST)])
@pytest.mark.parametrize("headers", [{}, bearer("wrong"), {"Authorization": f"Basic {TOKEN}"}, bearer(ADMIN_TOKEN)])
def test_order_endpoints_refuse_a_missing_or_wrong_token(client, path, body, headers):
    # when the shop calls without the API token
    response = client.post(path, json=body, headers=headers)

    # then 401 and nothing deducted
    assert response.status_code == 401
    assert stock(client, "IPH15-128-BLK") == 50
    assert stock(client, "IPH15-128-BLU") == 42


def test_order_import_deducts_its_lines(client):
    response = client.post("/api/v1/orders/import", json=ORDER, headers=bearer())

    assert response.status_code == 201
    assert response.get_json()["stock"] == [{"sku": "IPH15-128-BLK", "qty": 48}]
    assert stock(client, "IPH15-128-BLK") == 48
    [received] = client.get("/admin/orders", headers=bearer(ADMIN_TOKEN)).get_json()
    assert received["order_id"] == "ORD-WEB-1001" and received["kind"] == "order"


def test_adjust_deducts_quantity_change(client):
    response = client.post("/api/v1/inventory/adjust", json=ADJUST, headers=bearer())

    assert response.status_code == 201
    assert stock(client, "IPH15-128-BLU") == 39


@pytest.mark.parametrize("path, body", [("/api/v1/orders/import", ORDER), ("/api/v1/inventory/adjust", ADJUST)])
def test_repeated_order_answers_409_and_deducts_nothing(client, path, body):
    # given an order already taken
    assert client.post(path, json=body, headers=bearer()).status_code == 201
    before = (stock(client, "IPH15-128-BLK"), stock(client, "IPH15-128-BLU"))

    # when it comes again
    response = client.post(path, json=body, headers=bearer())

    # then 409 and no second deduction
    assert response.status_code == 409
    assert "already received" in response.get_json()["error"]
    assert (stock(client, "IPH15-128-BLK"), stock(client, "IPH15-128-BLU")) == before


def test_same_idempotency_key_is_the_same_order(client):
    first = client.post("/api/v1/orders/import", json=ORDER, headers={**bearer(), "Idempotency-Key": "k-1"})
    renamed = {**ORDER, "order_id": "ORD-WEB-1001-RETRY"}

    again = client.post("/api/v1/orders/import", json=renamed, headers={**bearer(), "Idempotency-Key": "k-1"})
    by_id = client.post("/api/v1/orders/import", json={**ORDER, "order_id": "k-1"}, headers=bearer())

    assert first.status_code == 201
    assert again.status_code == 409 and by_id.status_code == 409
    assert stock(client, "IPH15-128-BLK") == 48


@pytest.mark.parametrize(
    "path, body, reason",
    [
        ("/api/v1/orders/import", {**ORDER, "line_items": [{"sku": "NOPE", "quantity": 1}]}, "unknown sku"),
        ("/api/v1/orders/import", {**ORDER, "line_items": []}, "invalid body"),
        ("/api/v1/orders/import", {**ORDER, "line_items": [{"sku": "IPH15-128-BLK", "quantity": 0}]}, "invalid body"),
        ("/api/v1/orders/import", {**ORDER, "line_items": [{"sku": "IPH15-128-BLK", "quantity": "1"}]}, "invalid body"),
        ("/api/v1/orders/import", {"line_items": ORDER["line_items"]}, "invalid body"),
        ("/api/v1/orders/import", [ORDER], "the body must be a JSON object"),
        ("/api/v1/orders/import", {**ORDER, "line_items": [{"sku": "IPH15-128-BLK", "quantity": 51}]},
         "insufficient stock"),
        ("/api/v1/inventory/adjust", {**ADJUST, "adjustments": [{"sku": "NOPE", "quantity_change": -1}]},
         "unknown sku"),
        ("/api/v1/inventory/adjust", {"adjustments": ADJUST["adjustments"]}, "invalid body"),
        ("/api/v1/inventory/adjust", {**ADJUST, "adjustments": [{"sku": "IPH15-128-BLU"}]}, "invalid body"),
    ],
)
def test_bad_bodies_answer_400_with_a_reason_and_deduct_nothing(client, path, body, reason):
    response = client.post(path, json=body, headers=bearer())

    assert response.status_code == 400
    assert response.get_json()["error"] == reason
    assert stock(client, "IPH15-128-BLK") == 50 and stock(client, "IPH15-128-BLU") == 42
    assert client.get("/admin/orders", headers=bearer(ADMIN_TOKEN)).get_json() == []


def test_invalid_json_answers_400(client):
    response = client.post("/api/v1/orders/import", data=b"{not json", headers={**bearer(),
                           "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.get_json()["error"].startswith("invalid JSON")


def test_a_rejected_order_can_be_sent_again_once_fixed(client):
    bad = {**ORDER, "line_items": [*ORDER["line_items"], {"sku": "NOPE", "quantity": 1}]}
    assert client.post("/api/v1/orders/import", json=bad, headers=bearer()).status_code == 400

    assert client.post("/api/v1/orders/import", json=ORDER, headers=bearer()).status_code == 201
    assert stock(client, "IPH15-128-BLK") == 48


def test_option_b_positive_change_returns_stock(client):
    body = {"reference_id": "RET-1", "adjustments": [{"sku": "IPH15-128-BLK", "quantity_change": 5}]}

    assert client.post("/api/v1/inventory/adjust", json=body, headers=bearer()).status_code == 201
    assert stock(client, "IPH15-128-BLK") == 55


def fired_inventory_data(app) -> list[dict]:
    with app.extensions["sandbox_erp.ledger"].store.reading() as conn:
        bodies = conn.execute("SELECT body FROM outbox WHERE event_type = 'inventory.change' ORDER BY id").fetchall()
    return [json.loads(body)["data"] for (body,) in bodies]


@pytest.mark.parametrize(("reference_ids", "named"), [(False, None), (True, "ORD-WEB-1001")])
def test_the_figure_fired_for_an_order_names_it_when_set_to(make_app, reference_ids, named):
    app = make_app(reference_ids=reference_ids)

    app.test_client().post("/api/v1/orders/import", json=ORDER, headers=bearer())

    [data] = fired_inventory_data(app)
    assert (data["new_quantity"], data.get("reference_id")) == (48, named)


def test_reference_ids_are_set_from_the_environment():
    assert config_from_env({"SANDBOX_ERP_REFERENCE_IDS": "true"}).reference_ids is True
    assert config_from_env({}).reference_ids is False
