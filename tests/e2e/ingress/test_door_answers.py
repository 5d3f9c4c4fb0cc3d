"""`erp-sync ingress` answers each webhook as the app's own view does: status, JSON body, headers, metrics.

The production server takes the webhook on its event loop (ingress/door.py) rather than through
the Flask view; the ERP must not be able to tell the two apart.
"""
from __future__ import annotations

import http.client
from datetime import UTC, datetime

import pytest
import requests

from erp_sync.ingress import create_app
from erp_sync.shared.receipt_stamp import received_at
from erp_sync.shared.topology import QueueBound
from tests.support import cli
from tests.support.amqp import drain
from tests.support.bad_events import BAD_EVENTS
from tests.support.bulk import big_group, bounded_vhost
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.settings import WEBHOOK_SECRET
from tests.support.storefront import closed_after

BOUND = QueueBound(max_length=3, max_bytes=10 * 1024 * 1024)
MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_S = 7
# What the ERP reads from an answer besides its status and body.
COMPARED_HEADERS = ("Content-Type", "X-Content-Type-Options", "Retry-After")


@pytest.fixture
def door_settings(settings_factory):
    with bounded_vhost(BOUND) as url:
        yield settings_factory(amqp_url=url, queue_max_length=BOUND.max_length, queue_max_bytes=BOUND.max_bytes,
                               unavailable_retry_after_s=RETRY_AFTER_S, webhook_max_body_bytes=MAX_BODY_BYTES)


@pytest.fixture
def app(door_settings):
    yield from closed_after(create_app(door_settings))


@pytest.fixture
def view(app):
    """The Flask app's own webhook view, in this process."""
    return app.test_client()


@pytest.fixture
def door(door_settings):
    """`erp-sync ingress` as production runs it; yields its port."""
    port = cli.free_port()
    process = cli.start(
        "ingress", "--port", str(port), DATABASE_URL=door_settings.database_url, AMQP_URL=door_settings.amqp_url,
        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="1", UNAVAILABLE_RETRY_AFTER_S=str(RETRY_AFTER_S),
        WEBHOOK_MAX_BODY_BYTES=str(MAX_BODY_BYTES), QUEUE_MAX_LENGTH=str(BOUND.max_length),
        QUEUE_MAX_BYTES=str(BOUND.max_bytes),
    )
    try:
        cli.wait_for_port(port, process)
        yield port
    finally:
        cli.stop(process)


def live_answer(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        try:
            connection.request("POST", "/webhooks/erp", body=body, headers=headers)
        except BrokenPipeError:
            pass  # a body over the limit is answered without being read: the answer is there all the same
        response = connection.getresponse()
        return response.status, response.read(), {name: response.getheader(name, "") for name in COMPARED_HEADERS}
    finally:
        connection.close()


def view_answer(client, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    response = client.post("/webhooks/erp", data=body, headers=headers)
    headers = {name: response.headers.get(name, "") for name in COMPARED_HEADERS}
    return response.status_code, response.get_data(), headers


def signed(body: bytes, **overrides: str) -> dict[str, str]:
    return signed_headers(body, WEBHOOK_SECRET) | overrides


def webhooks() -> list[tuple[str, bytes, dict[str, str]]]:
    accepted = encode(inventory_event())
    too_big = encode(inventory_event(sku="X" * MAX_BODY_BYTES))
    return [
        ("accepted", accepted, signed(accepted)),
        ("content-type-with-charset", accepted,
         signed(accepted, **{"Content-Type": "Application/JSON; charset=utf-8"})),
        ("unsigned", accepted, {"Content-Type": "application/json"}),
        ("wrong-signature", accepted, signed(accepted, **{"X-ERP-Signature": "0" * 64})),
        ("signed-other-secret", accepted, signed_headers(accepted, "not-the-secret")),
        ("text-plain", accepted, signed(accepted, **{"Content-Type": "text/plain"})),
        ("too-big", too_big, signed(too_big)),
        *((name, body, signed(body)) for name, body, _fields in BAD_EVENTS),
    ]


def test_every_webhook_gets_the_views_answer(door, view, door_settings):
    # given the same webhooks, good and bad, sent to the live door and to the app's view
    for name, body, headers in webhooks():
        # when each is posted to both
        live = live_answer(door, body, headers)
        own = view_answer(view, body, headers)

        # then the answers are the same, byte for byte
        assert live == own, name

    # and the accepted ones (twice each: once through each) are on the queue
    assert len(drain(door_settings.amqp_url, "erp-sync.inventory")) == 4


def test_the_door_stamps_each_event_with_when_it_received_it(door, door_settings):
    # given two events of one SKU, the second sent once the first was answered (as the ERP sends)
    bodies = [encode(inventory_event(new_quantity=9)), encode(inventory_event(new_quantity=8))]
    before = datetime.now(UTC)

    # when the live door takes both
    assert [live_answer(door, body, signed(body))[0] for body in bodies] == [202, 202]
    after = datetime.now(UTC)

    # then each message carries its receipt time, in the order received
    received = [received_at(message.properties.headers) for message in drain(door_settings.amqp_url,
                                                                              "erp-sync.inventory")]
    assert received[0] is not None and received[1] is not None
    assert before <= received[0] < received[1] <= after


def test_a_full_queue_is_503_with_retry_after_and_counted(door, door_settings):
    # given the ERP pushing catalog events with no catalog worker, until the door refuses one
    statuses: list[int] = []
    while 503 not in statuses:
        body = encode(big_group(variants=1, images=1))
        status, answer, headers = live_answer(door, body, signed(body))
        statuses.append(status)
        assert len(statuses) < 10 * BOUND.max_length, "the bound never refused a publish"

    # then what fitted was accepted, and the refusal says when to come back
    assert set(statuses[:-1]) == {202}
    assert answer == b'{"details":[],"error":"the event\'s queue is full; retry later"}\n'
    assert headers == {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff",
                       "Retry-After": str(RETRY_AFTER_S)}
    metrics = requests.get(f"http://127.0.0.1:{door}/metrics", timeout=10).text
    assert 'erp_sync_webhooks_rejected_total{reason="queue_full"} 1.0' in metrics
    assert f'erp_sync_webhooks_accepted_total{{event_type="catalog.update"}} {float(len(statuses) - 1)}' in metrics
