"""Reading a parked message's headers, which anyone who can publish may have set to anything."""
from __future__ import annotations

from datetime import UTC, datetime

import pika
import pytest

from erp_sync.shared.dead_letters import parked_from
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, PARK_REASON_HEADER
from erp_sync.shared.topology import CRASH_DELIVERY_LIMIT


@pytest.mark.parametrize("headers, attempts", [
    ({ATTEMPT_HEADER: 3}, 3),
    ({ATTEMPT_HEADER: "three"}, 1),
    ({ATTEMPT_HEADER: b"4"}, 4),
    ({ATTEMPT_HEADER: float("nan")}, 1),
    ({ATTEMPT_HEADER: 0}, 1),
    # the parking queue's own count, which every listing moves on
    ({"x-delivery-count": 7}, 1),
    ({"x-death": [{"count": None, "reason": "delivery_limit"}]}, CRASH_DELIVERY_LIMIT + 1),
    # back from a retry delay (its third attempt), then delivered past the limit: 2 + the limit's deliveries
    ({ATTEMPT_HEADER: 3, "x-death": [{"count": None, "reason": "delivery_limit"}]}, 2 + CRASH_DELIVERY_LIMIT + 1),
    ({"x-death": [{"count": 1, "reason": "rejected"}]}, 1),
], ids=["a number", "a word", "bytes", "not a number", "zero", "the parking queue's count", "past the delivery limit",
        "past the delivery limit after retries", "rejected"])
def test_a_parked_message_is_listed_whatever_its_count_of_attempts(headers, attempts):
    # when a parked message with these headers is read for the dlq command and the console
    parked = parked_from("orders", pika.BasicProperties(message_id="m-1", headers=headers | {PARK_REASON_HEADER: "x"}),
                         b"{}")

    # then it is listed, with a sensible count
    assert parked.summary()["attempts"] == attempts


def test_a_message_the_broker_parked_shows_when_in_iso_8601_as_the_consumers_do():
    when = datetime(2026, 12, 6, 17, 53, 14, tzinfo=UTC)  # pika's reading of x-death's AMQP timestamp
    headers = {"x-death": [{"count": 21, "reason": "delivery_limit", "time": when}]}

    parked = parked_from("orders", pika.BasicProperties(message_id="m-1", headers=headers), b"{}")

    assert parked.parked_at == "2026-12-06T17:53:14+00:00"


def test_a_message_the_broker_parked_after_retries_says_how_often_it_was_delivered():
    headers = {ATTEMPT_HEADER: 2, "x-death": [{"count": 1, "reason": "delivery_limit"}]}

    parked = parked_from("inventory", pika.BasicProperties(message_id="evt-1", headers=headers), b"{}")

    assert parked.reason == f"broker: delivery_limit after {1 + CRASH_DELIVERY_LIMIT + 1} deliveries"
