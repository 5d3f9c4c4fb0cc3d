"""Both HTTP edges against their published OpenAPI documents, fuzzed with schemathesis."""
from __future__ import annotations

import os

import pytest

from erp_sync.ingress import create_app, openapi
from erp_sync.ingress.storefront import create_api_app
from erp_sync.shared.erp_events import decode_event
from erp_sync.shared.topology import WORK_QUEUES
from tests.support.amqp import drain
from tests.support.contract import WEBHOOK_PATH, fuzz, seed_resources, signing_hook
from tests.support.settings import API_TOKEN, WEBHOOK_SECRET
from tests.support.storefront import closed_after

pytestmark = pytest.mark.slow

# CONTRACT_MAX_EXAMPLES raises it for a longer hunt; the default keeps the run to seconds.
MAX_EXAMPLES = int(os.environ.get("CONTRACT_MAX_EXAMPLES", "30"))
# Any generated timestamp is inside the window, so valid events get as far as the broker.
ANY_TIME_S = 10**12


@pytest.fixture
def edges(settings_factory, broker):
    config = settings_factory(webhook_max_age_s=ANY_TIME_S, webhook_max_future_skew_s=ANY_TIME_S)
    door, api = create_app(config), create_api_app(config)
    yield door, api
    for app in (door, api):
        for _ in closed_after(app):
            pass


def test_both_edges_answer_only_as_documented(edges, broker, committed_session):
    # given the door and the API, each serving its own document, a product and an order to read,
    # and a client that signs every body
    door, api = edges
    known = seed_resources(committed_session)
    with signing_hook(WEBHOOK_SECRET, API_TOKEN) as client:
        # when every operation is called with generated data, valid and invalid, and with the known ids
        fuzzed = fuzz(door, MAX_EXAMPLES) + fuzz(api, MAX_EXAMPLES, known)

    # then no check failed (fuzz raises), every endpoint was covered
    assert f"POST {WEBHOOK_PATH}" in fuzzed
    assert {"GET /api/v1/inventory/{sku}", "GET /api/v1/orders/{order_id}", "GET /metrics"} <= set(fuzzed)
    # and nothing reached a queue that is not a valid event the client signed
    queued = [m.body for name in ("catalog", "inventory") for m in drain(broker, WORK_QUEUES[name].name)]
    for body in queued:
        decode_event(body)
        assert body in client.signed
    assert queued, "no generated event was accepted: the fuzzing never reached the broker"


@pytest.mark.parametrize(("edge", "document"), [("client", openapi.ingress_document), ("api_app", openapi.api_document)])
def test_each_edge_serves_its_own_document_without_a_credential(request, edge, document):
    # given either edge (the API's test client here carries no token)
    fixture = request.getfixturevalue(edge)
    client = fixture if edge == "client" else fixture.test_client()

    # when its contract is asked for
    response = client.get("/openapi.json")

    # then it is served as generated
    assert response.status_code == 200
    assert response.get_json() == document()
