"""The published contracts against the live processes: `erp-sync ingress` and `erp-sync api` as production
runs them (granian), fuzzed by schemathesis over HTTP with every webhook body signed."""
from __future__ import annotations

import pytest
import requests

from erp_sync.shared.erp_events import decode_event
from erp_sync.shared.topology import WORK_QUEUES
from tests.support import cli
from tests.support.amqp import drain
from tests.support.contract import WEBHOOK_PATH, fuzz_url, seed_resources, signing_hook
from tests.support.settings import API_TOKEN, WEBHOOK_SECRET

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 15
ANY_TIME_S = str(10**12)  # any generated timestamp is inside the window: valid events reach the broker


@pytest.fixture
def live(migrated_database_url, broker):
    """Both listeners as processes on the run's database and vhost; yields their base URLs."""
    env = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker, "ERP_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "STOREFRONT_API_TOKEN": API_TOKEN, "WEBHOOK_MAX_AGE_S": ANY_TIME_S,
           "WEBHOOK_MAX_FUTURE_SKEW_S": ANY_TIME_S, "INGRESS_WORKERS": "1", "API_WORKERS": "1"}
    door_port, api_port = cli.free_port(), cli.free_port()
    door = cli.start("ingress", "--port", str(door_port), **env)
    api = cli.start("api", "--port", str(api_port), **env)
    try:
        for port, process in ((door_port, door), (api_port, api)):
            cli.wait_for_port(port, process)
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).raise_for_status()
        yield f"http://127.0.0.1:{door_port}", f"http://127.0.0.1:{api_port}"
    finally:
        cli.stop(door)
        cli.stop(api)


def test_the_live_processes_answer_only_as_their_documents_say(live, broker, committed_session):
    # given both processes serving their documents, a product and an order to read, and a signing client
    door, api = live
    known = seed_resources(committed_session)
    with signing_hook(WEBHOOK_SECRET, API_TOKEN) as client:
        # when every operation is called over HTTP with generated data, valid and invalid
        fuzzed = fuzz_url(door, MAX_EXAMPLES) + fuzz_url(api, MAX_EXAMPLES, known)

    # then no check failed (fuzz raises), every operation was called
    assert f"POST {WEBHOOK_PATH}" in fuzzed and "GET /api/v1/orders/{order_id}" in fuzzed
    # and what reached a queue is only valid events the client signed, at least the spec's examples
    queued = [m.body for name in ("catalog", "inventory") for m in drain(broker, WORK_QUEUES[name].name)]
    assert queued
    for body in queued:
        decode_event(body)
        assert body in client.signed
