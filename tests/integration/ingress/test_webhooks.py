from __future__ import annotations

import gzip
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from erp_sync.ingress import create_app
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.receipt_stamp import RECEIVED_AT_HEADER, received_at
from tests.support.amqp import drain
from tests.support.bad_events import BAD_EVENTS
from tests.support.settings import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET
from tests.support.factories import (
    catalog_event,
    encode,
    inventory_event,
    now_iso,
    signed_headers,
)


def post(client, body: bytes, secret: str = WEBHOOK_SECRET, **header_overrides: str):
    headers = signed_headers(body, secret)
    headers.update(header_overrides)
    return client.post("/webhooks/erp", data=body, headers=headers)


def all_work_messages(amqp_url: str) -> dict[str, list[bytes]]:
    return {q: [m.body for m in drain(amqp_url, f"erp-sync.{q}")] for q in ("catalog", "inventory")}


@pytest.mark.parametrize(
    ("event", "queue", "other"),
    [(catalog_event(), "catalog", "inventory"), (inventory_event(), "inventory", "catalog")],
    ids=["catalog.update", "inventory.change"],
)
def test_signed_event_lands_on_its_queue_byte_for_byte(client, broker, event, queue, other):
    # given an event with odd spacing and a price whose text must survive untouched
    body = json.dumps(event, indent=3).replace('"price": 79900.0', '"price": 79900.00').encode()

    # when the ERP posts it, signed
    response = post(client, body)

    # then it is accepted and the exact bytes wait on the worker's queue, persistent
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "event_id": event["event_id"]}
    landed = drain(broker, f"erp-sync.{queue}")
    assert [m.body for m in landed] == [body]
    assert landed[0].properties.message_id == event["event_id"]
    assert landed[0].properties.delivery_mode == 2
    assert landed[0].properties.content_type == "application/json"
    assert drain(broker, f"erp-sync.{other}") == []


def test_each_event_is_stamped_with_when_the_door_received_it_in_the_order_received(client, broker):
    # given two events of one SKU, the second sent once the first was answered (as the ERP sends)
    events = [inventory_event(new_quantity=9), inventory_event(new_quantity=8)]
    before = datetime.now(UTC)

    # when both are posted
    assert [post(client, encode(event)).status_code for event in events] == [202, 202]
    after = datetime.now(UTC)

    # then each message carries the door's receipt time, in microseconds, the second's later
    landed = drain(broker, "erp-sync.inventory")
    stamps = [message.properties.headers[RECEIVED_AT_HEADER] for message in landed]
    assert all(isinstance(stamp, int) for stamp in stamps)
    received = [received_at(message.properties.headers) for message in landed]
    assert before <= received[0] < received[1] <= after


def test_ingress_refuses_to_start_without_a_secret(settings_factory, broker):
    with pytest.raises(ConfigurationError, match="ERP_WEBHOOK_SECRET"):
        create_app(settings_factory(erp_webhook_secret=""))


@pytest.mark.parametrize(
    "headers",
    [
        {"X-ERP-Signature": ""},
        {"X-ERP-Signature": "0" * 64},
        {"X-ERP-Signature": "not hex at all é"},
    ],
    ids=["empty", "wrong-digest", "garbage"],
)
def test_wrongly_signed_event_is_refused_and_not_stored(client, broker, headers):
    response = post(client, encode(inventory_event()), **headers)

    assert response.status_code == 401
    assert "X-ERP-Signature" in response.get_json()["error"]
    assert all_work_messages(broker) == {"catalog": [], "inventory": []}


def test_unsigned_event_is_refused(client, broker):
    response = client.post("/webhooks/erp", data=encode(inventory_event()), content_type="application/json")

    assert response.status_code == 401
    assert response.get_json()["error"].startswith("missing X-ERP-Signature: the lowercase hex HMAC-SHA256")


def test_a_signature_of_other_bytes_is_told_to_sign_the_bytes_sent(client, broker):
    # a signature over the event re-serialised, as ERP code that signs an object rather than its body makes
    event = inventory_event()
    sent, signed = json.dumps(event, indent=2).encode(), encode(event)

    response = client.post("/webhooks/erp", data=sent, headers=signed_headers(signed, WEBHOOK_SECRET))

    assert response.status_code == 401
    assert response.get_json()["error"].startswith("X-ERP-Signature does not match the body: sign the exact bytes sent")


def test_signature_is_checked_before_the_body_is_parsed(client, broker):
    # An unsigned caller learns nothing about what a valid body looks like.
    response = client.post("/webhooks/erp", data=b"{not json", content_type="application/json",
                           headers={"X-ERP-Signature": "0" * 64})

    assert response.status_code == 401


def test_signature_of_another_body_is_refused(client, broker):
    signed = encode(inventory_event(new_quantity=49))
    tampered = signed.replace(b"49", b"4900")

    response = client.post("/webhooks/erp", data=tampered, headers=signed_headers(signed, WEBHOOK_SECRET))

    assert response.status_code == 401


@pytest.mark.parametrize("secret", [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET], ids=["current", "previous"])
def test_both_secrets_are_accepted_during_a_rotation(client, broker, secret):
    assert post(client, encode(inventory_event()), secret=secret).status_code == 202


def test_sha256_prefix_and_uppercase_hex_are_accepted(client, broker):
    body = encode(inventory_event())
    digest = signed_headers(body, WEBHOOK_SECRET)["X-ERP-Signature"]

    response = post(client, body, **{"X-ERP-Signature": f"sha256={digest.upper()}"})

    assert response.status_code == 202


def test_non_json_content_type_is_refused(client, broker):
    body = encode(inventory_event())
    response = client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET, "text/plain"))

    assert response.status_code == 415
    assert drain(broker, "erp-sync.inventory") == []


def test_body_over_the_limit_is_refused_counted_and_logged(settings_factory, broker, caplog):
    app = create_app(settings_factory(webhook_max_body_bytes=2048))
    body = encode(catalog_event(description="x" * 4096))
    counted = REGISTRY.get_sample_value("erp_sync_webhooks_rejected_total", {"reason": "too_large"})

    with caplog.at_level(logging.WARNING, logger="erp_sync.ingress.webhooks"):
        response = post(app.test_client(), body)

    assert response.status_code == 413
    assert response.get_json()["error"].startswith("the body is over the limit of 2048 bytes (WEBHOOK_MAX_BODY_BYTES)")
    assert drain(broker, "erp-sync.catalog") == []
    # and it counts among the refused webhooks the runbook has the on-call person look at, with a line of its own
    assert REGISTRY.get_sample_value("erp_sync_webhooks_rejected_total", {"reason": "too_large"}) == counted + 1
    assert "over WEBHOOK_MAX_BODY_BYTES" in caplog.text


@pytest.mark.parametrize("compressed", [True, False], ids=["gzipped", "labelled-only"])
def test_a_body_said_to_be_compressed_is_415_naming_the_encoding_and_not_stored(client, broker, compressed):
    # a gzipped body read as JSON was a 400, which the ERP does not retry (spec 7.1): the event was lost
    plain = encode(inventory_event())
    body = gzip.compress(plain) if compressed else plain

    response = post(client, body, **{"Content-Encoding": "gzip"})

    assert response.status_code == 415
    assert response.get_json()["error"] == "Content-Encoding 'gzip' is not accepted: send the body uncompressed, signed as sent"
    assert drain(broker, "erp-sync.inventory") == []


def test_an_identity_encoding_is_no_encoding(client, broker):
    assert post(client, encode(inventory_event()), **{"Content-Encoding": "identity"}).status_code == 202


@pytest.mark.parametrize(("body", "fields"), [(b, f) for _, b, f in BAD_EVENTS], ids=[i for i, _, _ in BAD_EVENTS])
def test_bad_event_gets_400_naming_every_bad_field_and_is_not_stored(client, broker, body, fields):
    response = post(client, body)

    assert response.status_code == 400
    answer = response.get_json()
    assert answer["error"]
    assert sorted({d["field"] for d in answer["details"]}) == sorted(fields)
    assert all(d["message"] for d in answer["details"])
    assert all_work_messages(broker) == {"catalog": [], "inventory": []}


def test_retry_from_a_day_ago_is_still_accepted(client, broker):
    # The ERP retries for up to 24 h with the original timestamp (spec 7.1).
    event = {**inventory_event(), "timestamp": now_iso(-timedelta(hours=25))}

    assert post(client, encode(event)).status_code == 202


def test_delta_event_is_accepted(client, broker):
    event = inventory_event(new_quantity=None, quantity_change=-2)
    del event["data"]["new_quantity"]

    assert post(client, encode(event)).status_code == 202
    assert len(drain(broker, "erp-sync.inventory")) == 1


def test_metrics_count_accepted_and_rejected_by_reason(client, broker):
    def sample(name: str) -> float:
        for line in client.get("/metrics").get_data(as_text=True).splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                if line.split(" ")[0] == name:
                    return float(line.split(" ")[1])
        return 0.0

    accepted = 'erp_sync_webhooks_accepted_total{event_type="inventory.change"}'
    rejected = 'erp_sync_webhooks_rejected_total{reason="signature"}'
    before = (sample(accepted), sample(rejected))

    post(client, encode(inventory_event()))
    post(client, encode(inventory_event()), secret="another-secret-entirely-xx")

    assert (sample(accepted), sample(rejected)) == (before[0] + 1, before[1] + 1)
    assert "erp_sync_publish_seconds_count" in client.get("/metrics").get_data(as_text=True)
