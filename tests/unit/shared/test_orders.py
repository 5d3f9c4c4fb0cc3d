"""Orders at the edge (publish_order) and on the queue (the orders worker): what each takes."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.orders import decode_order, publish_order
from tests.support.orders import order_body


@pytest.mark.parametrize("order_id", ["ORD-中文", "ORD-é-3", "ORD-\u00a0-1"])
def test_an_order_id_beyond_printable_ascii_is_refused_at_publish_naming_the_header(order_id):
    # the order id goes to the ERP as the Idempotency-Key header: "中" failed at every push
    with pytest.raises(MessageDecodeError) as refused:
        decode_order(order_body(order_id))

    assert refused.value.details == [{"field": "order_id", "problem": "must be printable ASCII (letters, digits, "
                                      "punctuation, spaces): it goes to the ERP as the Idempotency-Key header"}]


@pytest.mark.parametrize("order_date", [1796600153, "20261206234235"])
def test_an_order_date_that_is_no_iso_8601_text_is_refused_at_publish(order_date):
    body = json.dumps({**json.loads(order_body()), "order_date": order_date}).encode()

    with pytest.raises(MessageDecodeError) as refused:
        decode_order(body)

    [detail] = refused.value.details
    assert detail["field"] == "order_date" and detail["problem"].startswith("expected an ISO 8601 date and time")


def test_a_queued_order_an_earlier_release_took_is_still_read():
    # queued across an upgrade: published by a publish_order that took these, it is recorded, not parked
    body = json.dumps({**json.loads(order_body("ORD-é-3")), "order_date": 1796600153}).encode()

    order = decode_order(body, queued=True)

    assert order.order_id == "ORD-é-3" and order.order_date.year == 2026


@pytest.mark.parametrize(("body", "told"), [
    (b'{"order_id": "ORD-\xe9"}', "it must be UTF-8, and byte 0xe9 at position 18 is not"),
    (b'{"order_id": "ORD-1", "n": 1E+99999999999999999999}', "a number's exponent is out of range"),
])
def test_an_order_body_that_is_not_json_is_told_why_in_the_senders_terms(body, told):
    with pytest.raises(MessageDecodeError) as refused:
        decode_order(body)

    assert str(refused.value) == f"order body is not JSON: {told}"


def without_customer(body: bytes, **members: object) -> bytes:
    document = json.loads(body)
    del document["customer_ref"]
    return json.dumps({**document, **members}).encode()


def test_a_misspelt_member_is_refused_at_publish_naming_the_spelling_meant():
    # "customerRef" was ignored: the order reached the ERP without its customer (and "warehouseId"
    # took stock from the default warehouse)
    body = without_customer(order_body(), customerRef="CUST-555", warehouseId="WH-EAST")

    with pytest.raises(MessageDecodeError) as refused:
        decode_order(body)

    assert sorted(refused.value.details, key=str) == [
        {"field": "(body)", "problem": "unknown member 'customerRef': the field is spelt 'customer_ref'"},
        {"field": "(body)", "problem": "unknown member 'warehouseId': the field is spelt 'warehouse_id'"},
    ]


def test_a_queued_order_with_a_misspelt_member_goes_on_with_a_warning(caplog):
    # published by other means than publish_order: the shop took the order, the ERP must get it
    body = without_customer(order_body("ORD-7"), customerRef="CUST-555")

    with caplog.at_level(logging.WARNING, logger="erp_sync.shared.orders"):
        order = decode_order(body, queued=True)

    assert order.customer_ref == ""
    assert "order ORD-7: (body): unknown member 'customerRef'" in caplog.text


def test_a_negative_zero_price_is_a_zero_price():
    # a float's round(-0.004, 2) is -0.0: "-0.00" reached the ERP as a negative price
    body = json.dumps({**json.loads(order_body()),
                       "line_items": [{"sku": "SKU-1", "quantity": 1, "unit_price": -0.0}]}).encode()

    order = decode_order(body)

    assert str(order.line_items[0].unit_price) == "0.00"
    assert b'"unit_price":0.00' in order.to_json()


def test_publish_order_takes_an_order_date_given_as_a_datetime():
    # a TypeError out of publish_order, which promises MessageDecodeError for a bad order
    publisher = RecordingPublisher()
    order = {**json.loads(order_body("ORD-8")), "order_date": datetime(2026, 12, 4, 10, 15, tzinfo=UTC)}

    publish_order(publisher, order)  # type: ignore[arg-type]

    [message] = publisher.published
    assert json.loads(message.body)["order_date"] == "2026-12-04T10:15:00Z"
    with pytest.raises(MessageDecodeError, match="order_date"):
        publish_order(publisher, {**order, "order_date": datetime(2026, 12, 4, 10, 15)})  # type: ignore[arg-type]


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list = []

    def publish(self, message) -> None:
        self.published.append(message)
