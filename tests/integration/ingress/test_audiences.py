"""Listeners by audience: the ERP's door serves the webhook and probes; the storefront's API, behind its token, the reads."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from erp_sync.ingress.storefront import create_api_app
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.models import StockLevel
from tests.support.settings import API_TOKEN, OLD_API_TOKEN
from tests.support.storefront import api_client

READ_PATHS = ("/api/v1/inventory/SKU-1", "/api/v1/inventory/SKU-1/history", "/api/v1/products/SKU-1",
              "/api/v1/orders/ORD-1", "/metrics")


@pytest.mark.parametrize("path", READ_PATHS[:4])
def test_the_erps_door_serves_no_storefront_path(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token-0123456789", f"Basic {API_TOKEN}"])
def test_the_api_refuses_a_request_without_its_token(api_app, path, authorization):
    client = api_app.test_client()
    headers = {"Authorization": authorization} if authorization else {}

    answer = client.get(path, headers=headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.get_json()["error"] == "missing or invalid Authorization: Bearer token"


def test_the_api_takes_the_old_and_the_new_token_during_a_rotation(api_app, committed_session):
    committed_session.add(StockLevel(sku="SKU-ROT", erp_quantity=5, erp_as_of=datetime.now(UTC)))
    committed_session.commit()

    for token in (API_TOKEN, OLD_API_TOKEN):
        assert api_client(api_app, token).get("/api/v1/inventory/SKU-ROT").get_json()["erp_quantity"] == 5


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_orchestrators_probes_need_no_token(api_app, path):
    assert api_app.test_client().get(path).status_code == 200


def test_the_api_refuses_to_start_without_a_token(settings_factory):
    with pytest.raises(ConfigurationError, match="STOREFRONT_API_TOKEN"):
        create_api_app(settings_factory(storefront_api_token=""))


@pytest.mark.parametrize("path", ["/api/v1/products/%00", "/api/v1/inventory/SKU%00X", "/api/v1/orders/ORD%0AALERT",
                                  "/api/v1/inventory/" + "X" * 101, "/api/v1/orders/" + "O" * 101])
def test_an_identifier_storage_could_not_hold_is_a_404_not_an_outage(api, path, caplog):
    answer = api.get(path)

    assert answer.status_code == 404
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("path", ["/api/v1/inventory/NOPE", "/healthz", "/readyz"])
def test_the_apis_answers_tell_browsers_not_to_sniff(api, path):
    assert api.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_the_doors_answers_tell_browsers_not_to_sniff(client):
    for answer in (client.post("/webhooks/erp", data=b"{}"), client.get("/healthz")):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_method_a_path_does_not_take_is_a_json_405_that_names_the_methods_it_does(client, api):
    # RFC 9110: a 405 carries Allow
    door = client.get("/webhooks/erp")
    read = api.post("/api/v1/inventory/SKU-1", headers={"Authorization": f"Bearer {API_TOKEN}"})

    assert (door.status_code, door.content_type) == (405, "application/json")
    assert set(door.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}
    assert (read.status_code, read.content_type) == (405, "application/json")
    assert set(read.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}


def test_an_options_request_is_answered_with_the_methods_and_no_body(client, api):
    # given either edge, asked which methods a path takes (the API with its token)
    door = client.options("/webhooks/erp")
    read = api.options("/api/v1/inventory/SKU-1", headers={"Authorization": f"Bearer {API_TOKEN}"})

    # then each says it in Allow, with no content and so no content type to sniff
    for answer, methods in ((door, {"POST", "OPTIONS"}), (read, {"GET", "HEAD", "OPTIONS"})):
        assert (answer.status_code, answer.data) == (204, b"")
        assert "Content-Type" not in answer.headers
        assert set(answer.headers["Allow"].split(", ")) == methods
