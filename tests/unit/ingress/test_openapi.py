"""The published contracts: the repository's copies are what the code generates."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from erp_sync.ingress import openapi
from erp_sync.ingress.bridge import TOO_SLOW

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", sorted(openapi.DOCUMENTS))
def test_kept_document_is_the_generated_one(name):
    # given the copy kept in the repository
    kept = (ROOT / openapi.FILES[name]).read_text(encoding="utf-8")

    # when the code generates the document
    generated = openapi.render(openapi.DOCUMENTS[name]())

    # then they are the same; `make openapi` rewrites the copy after a change
    assert kept == generated, f"{openapi.FILES[name]} is stale: run `make openapi` and commit it"


def test_webhook_body_is_generated_from_the_validating_models():
    document = openapi.ingress_document()

    body = document["paths"]["/webhooks/erp"]["post"]["requestBody"]["content"]["application/json"]["schema"]

    assert body["discriminator"]["propertyName"] == "event_type"
    assert {"CatalogUpdate", "InventoryChange", "Variant"} <= set(document["components"]["schemas"])
    stock = document["components"]["schemas"]["Variant"]["properties"]["stock_quantity"]["anyOf"][0]
    assert stock == {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}


def test_attribute_values_describe_their_types():
    variant = openapi.ingress_document()["components"]["schemas"]["Variant"]

    value = variant["properties"]["attributes"]["additionalProperties"]

    assert [choice["type"] for choice in value["anyOf"]] == ["string", "number", "boolean"]


def test_product_description_is_documented_as_raw_html():
    product = openapi.api_document()["paths"]["/api/v1/products/{sku}"]["get"]["responses"]["200"]

    group = product["content"]["application/json"]["schema"]["properties"]["group"]

    assert "sanitise" in group["properties"]["description"]["description"]


def test_only_the_probes_and_the_contract_are_open_on_the_api():
    document = openapi.api_document()

    open_paths = {path for path, item in document["paths"].items() if item["get"].get("security") == []}

    assert document["security"] == [{"storefrontToken": []}]
    assert open_paths == {"/healthz", "/readyz", "/openapi.json"}


@pytest.mark.parametrize("name", sorted(openapi.DOCUMENTS))
def test_every_document_is_json_with_unique_operation_ids(name):
    document = json.loads(openapi.render(openapi.DOCUMENTS[name]()))

    ids = [operation["operationId"] for item in document["paths"].values() for operation in item.values()]

    assert document["openapi"].startswith("3.1")
    assert len(ids) == len(set(ids))


def test_the_answer_to_a_body_too_slow_to_arrive_is_documented():
    responses = openapi.ingress_document()["paths"]["/webhooks/erp"]["post"]["responses"]

    assert str(TOO_SLOW[0]) in responses
    assert "HTTP_READ_TIMEOUT_S" in responses[str(TOO_SLOW[0])]["description"]
