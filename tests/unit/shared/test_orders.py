"""Orders at the edge (publish_order) and on the queue (the orders worker): what each takes."""
from __future__ import annotations

import json

import pytest

from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.orders import decode_order
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
