"""Orders at the edge (publish_order) and on the queue (the orders worker): what each takes."""
from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.orders import (
    MAX_ORDER_BYTES, MAX_ORDER_LINES, OrderPlaced, decode_order, order_id_of, publish_order, readable_parts,
)
from tests.support.orders import order_body, order_of_lines


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


def test_an_order_of_more_lines_than_the_limit_is_refused_at_publish_naming_the_limit():
    # a storefront's runaway order of 1,000,000 lines held every order behind it for 50 s, and took
    # the orders worker 1.6 GB
    publisher = RecordingPublisher()

    with pytest.raises(MessageDecodeError) as refused:
        publish_order(publisher, json.loads(order_of_lines(MAX_ORDER_LINES + 1)))

    assert refused.value.details == [{"field": "line_items",
                                      "problem": "at most 1,000 lines an order, not 1,001: place it as several orders, "
                                                 "each under a new order id"}]
    assert publisher.published == []


def test_an_order_of_as_many_lines_as_the_limit_is_published():
    publisher = RecordingPublisher()

    publish_order(publisher, json.loads(order_of_lines(MAX_ORDER_LINES)))

    [message] = publisher.published
    assert len(json.loads(message.body)["line_items"]) == 1_000


def test_the_largest_order_publish_order_writes_is_within_the_body_limit():
    # given the longest of every field: SKUs of astral characters up to their 255 bytes, each escaped
    # to 12 bytes, the largest quantity and price
    sku = "\U0001f600" * 63
    order = OrderPlaced.model_validate({
        "order_id": "O" * 100, "order_date": "2024-01-20T10:15:00.123456+05:30", "customer_ref": "\U0001f600" * 100,
        "warehouse_id": sku, "line_items": [{"sku": sku, "quantity": 1_000_000_000, "unit_price": "9999999999.99"}]
        * MAX_ORDER_LINES})

    # when publish_order writes it, then the orders worker reads it
    body = order.to_json()
    assert len(body) <= MAX_ORDER_BYTES
    assert decode_order(body).same_order(order)


def test_a_body_over_the_limit_is_refused_unread():
    # given a body past the limit, valid JSON up to it and not after it
    body = order_body()[:-1] + b" " * MAX_ORDER_BYTES + b"no JSON"

    with pytest.raises(MessageDecodeError) as refused:
        decode_order(body, queued=True)

    # then the refusal is its size, not its JSON: it was never parsed
    assert str(refused.value) == (f"order body of {len(body):,} bytes, over the 1,048,576 an order may take "
                                  "(at most 1,000 lines): not read; place it as several orders, each under a new order id")
    assert readable_parts(body) == (None, "")


LARGE = b'{"order_id" :\t"ORD-1", "line_items": [' + b" " * MAX_ORDER_BYTES + b"]}"


@pytest.mark.parametrize(("body", "message_id", "named"), [
    (LARGE, "ORD-1", "ORD-1"),  # the message id publish_order gives, named by the body as its order id
    (LARGE, "ORD-2", None),  # a message id the body does not give as its order id
    (LARGE.replace(b'"ORD-1"', b'"ORD-10"'), "ORD-1", None),
    (LARGE, None, None),
    # Only the body's own member names it: not one inside a line, nor another member's text.
    (LARGE.replace(b'"ORD-1"', b'"ORD-2"').replace(b'"line_items": [', b'"line_items": [{"order_id": "ORD-1"},'),
     "ORD-1", None),
    (LARGE.replace(b'"ORD-1"', b'"ORD-2", "note": "\\"order_id\\": \\"ORD-1\\""'), "ORD-1", None),
    # Read as JSON reads it: escapes are the characters they stand for.
    (LARGE.replace(b'"ORD-1"', b'"ORD\\u002d1"'), "ORD-1", "ORD-1"),
    (LARGE.replace(b'"line_items": [', b'"line_items": [}'), "ORD-1", "ORD-1"),  # broken after it: named
    (b'{"line_items": [}' + LARGE[1:], "ORD-1", None),  # broken before it
    (order_body("ORD-3"), "ORD-1", "ORD-3"),  # within the limit, the body is read: its own order id
])
def test_a_body_over_the_limit_is_known_by_its_message_id_when_it_names_it_as_its_order_id(body, message_id, named):
    assert order_id_of(body, message_id) == named


def test_an_order_too_long_for_the_body_limit_is_refused_at_publish_naming_its_lines():
    # given 30,000 lines: a body of 1.6 MB, refused for its size alone it named no field
    publisher = RecordingPublisher()

    with pytest.raises(MessageDecodeError) as refused:
        publish_order(publisher, json.loads(order_of_lines(30_000)))

    assert [detail["field"] for detail in refused.value.details] == ["line_items"]
    assert "not 30,000" in str(refused.value)
    assert publisher.published == []
