"""A message back twice without an ack is a suspect, and a consumer hands it over alone."""
from __future__ import annotations

import pytest

from erp_sync.shared.consumer import (
    SUSPECT_RETURNS,
    Delivery,
    next_batch_of,
    retried,
)
from erp_sync.shared.retry_policy import ACQUIRED_COUNT_HEADER, ATTEMPT_HEADER, DELIVERY_COUNT_HEADER, Retry
from erp_sync.shared.topology import WORK_QUEUES


def delivery(tag: int, returns: object = None, *, redelivered: bool | None = None) -> Delivery:
    headers = {} if returns is None else {DELIVERY_COUNT_HEADER: returns}
    back = returns is not None if redelivered is None else redelivered
    return Delivery(tag, b"{}", f"msg-{tag}", "application/json", headers, redelivered=back)


@pytest.mark.parametrize(("returns", "redelivered", "suspect"), [
    (None, False, False),
    (1, True, False),  # a connection lost once takes back all it had: no suspicion yet
    (SUSPECT_RETURNS, True, True),
    (7, True, True),
    # Copied onto a retry's new message (its headers travel with it), not a return of that message.
    (SUSPECT_RETURNS, False, False),
    ("2", True, False),  # only the broker's count, a number, counts
    (True, True, False),
])
def test_a_message_is_a_suspect_once_the_broker_has_had_it_back_twice(returns, redelivered, suspect):
    assert delivery(1, returns, redelivered=redelivered).suspect is suspect


def tags(batch: list[Delivery]) -> list[int]:
    return [each.delivery_tag for each in batch]


def test_a_batch_ends_before_a_suspect_and_a_suspect_is_a_batch_of_its_own():
    buffer = [delivery(1), delivery(2), delivery(3, SUSPECT_RETURNS), delivery(4, SUSPECT_RETURNS), delivery(5)]

    batches = [tags(next_batch_of(buffer, 10)) for _ in range(4)]

    assert batches == [[1, 2], [3], [4], [5]]
    assert buffer == []


def test_a_batch_of_unsuspected_messages_is_bounded_by_its_size_only():
    buffer = [delivery(tag, 1) for tag in range(1, 8)]
    assert tags(next_batch_of(buffer, 5)) == [1, 2, 3, 4, 5]
    assert tags(buffer) == [6, 7]


@pytest.mark.parametrize(("delivery_count", "acquired_count", "suspect"), [
    (None, SUSPECT_RETURNS, True),  # RabbitMQ 4.3: a connection closed may count as acquired only
    (0, SUSPECT_RETURNS - 1, False),
    (SUSPECT_RETURNS, 0, True),
])
def test_either_of_the_brokers_counts_of_returns_makes_a_suspect(delivery_count, acquired_count, suspect):
    headers = {name: value for name, value in ((DELIVERY_COUNT_HEADER, delivery_count),
                                               (ACQUIRED_COUNT_HEADER, acquired_count)) if value is not None}
    assert Delivery(1, b"{}", "msg-1", "application/json", headers, redelivered=True).suspect is suspect


def test_a_retry_is_a_new_message_without_the_brokers_counts_of_the_returns_of_this_one():
    back = Delivery(1, b"{}", "msg-1", "application/json",
                    {DELIVERY_COUNT_HEADER: 3, ACQUIRED_COUNT_HEADER: 3, "x-keep": "kept"}, redelivered=True)

    message = retried(WORK_QUEUES["inventory"], back, Retry(delay_ms=1000, attempt=2))

    assert message.headers == {"x-keep": "kept", ATTEMPT_HEADER: 2}
    assert message.routing_key == WORK_QUEUES["inventory"].retry_routing_key(1000)
