"""The push rule of an order's row, without a database: whether a message pushes it, and when to retry."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from erp_sync.workers.order_store import PushState
from erp_sync.workers.order_sync import is_due, next_attempt

NOW = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
INTERVAL_S, WINDOW_S = 900, 7200


def row(status: str, next_attempt_at: datetime | None = None) -> PushState:
    return PushState("ORD-1", status, 1, NOW - timedelta(minutes=5), next_attempt_at, None, None, None, NOW)


@pytest.mark.parametrize("status, next_attempt_at, redelivered, due", [
    ("received", None, False, True),
    ("synced", None, False, False),
    ("synced", None, True, False),
    ("rejected", None, True, False),
    ("pending_sync", NOW - timedelta(seconds=1), False, True),
    ("pending_sync", NOW, False, True),
    # its retry waits in the delay queue: a duplicate or stale re-send must not start a second one
    ("pending_sync", NOW + timedelta(minutes=10), False, False),
    # handed out again by the broker, it may be all that is left of that retry
    ("pending_sync", NOW + timedelta(minutes=10), True, True),
    ("local_only", None, False, True),
    # it failed again a moment ago: the probe's next round starts with the orders after it
    ("local_only", NOW + timedelta(minutes=10), False, False),
])
def test_a_message_pushes_only_an_order_that_is_due(status, next_attempt_at, redelivered, due):
    assert is_due(row(status, next_attempt_at), redelivered=redelivered) is due


def test_an_unreachable_erp_is_tried_again_after_the_interval_within_the_window():
    first = NOW - timedelta(hours=1)
    assert next_attempt(first, NOW, INTERVAL_S, WINDOW_S) == NOW + timedelta(seconds=900)


@pytest.mark.parametrize("since_first_attempt", [timedelta(hours=2), timedelta(hours=3)])
def test_an_order_unreachable_for_the_whole_window_is_tried_no_more(since_first_attempt):
    assert next_attempt(NOW - since_first_attempt, NOW, INTERVAL_S, WINDOW_S) is None
