from __future__ import annotations

import csv
import io
import json

import pytest

from tests.support.sandbox import ADMIN_TOKEN, bearer

EXPECTED = {"IPH15-128-BLK": 50, "IPH15-128-BLU": 42}


@pytest.mark.parametrize("headers", [{}, bearer("wrong"), bearer(ADMIN_TOKEN)])
def test_snapshot_refuses_a_missing_or_wrong_token(client, headers):
    assert client.get("/api/v1/inventory/snapshot", headers=headers).status_code == 401


def test_snapshot_as_csv(client):
    response = client.get("/api/v1/inventory/snapshot?format=csv", headers=bearer())

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {row["sku"]: int(row["qty"]) for row in rows} == EXPECTED
    assert list(rows[0]) == ["sku", "qty"]


@pytest.mark.parametrize("form", ["json", "csv", "url"])
def test_configured_default_form_is_used_without_a_query_parameter(make_app, form):
    client = make_app(snapshot_format=form).test_client()

    response = client.get("/api/v1/inventory/snapshot", headers=bearer())

    expected = {"json": "application/json", "csv": "text/csv", "url": "application/json"}[form]
    assert response.mimetype == expected
    if form == "url":
        assert "url" in response.get_json()


def test_unknown_format_answers_400(client):
    response = client.get("/api/v1/inventory/snapshot?format=xml", headers=bearer())

    assert response.status_code == 400
    assert "format" in response.get_json()["error"]


def test_snapshot_reflects_deductions(client):
    client.post("/api/v1/orders/import", headers=bearer(),
                json={"order_id": "O-1", "line_items": [{"sku": "IPH15-128-BLK", "quantity": 5}]})

    items = json.loads(client.get("/api/v1/inventory/snapshot", headers=bearer()).get_data())

    assert {item["sku"]: item["qty"] for item in items}["IPH15-128-BLK"] == 45


def test_generated_catalog_is_chunked_across_many_rows(make_app):
    client = make_app(catalog_file=None, generate_groups=300, variants_per_group=4, snapshot_chunk_rows=7).test_client()

    items = json.loads(client.get("/api/v1/inventory/snapshot", headers=bearer()).get_data())

    skus = [item["sku"] for item in items]
    assert len(skus) == 1200 == len(set(skus))
    assert skus == sorted(skus)
