from __future__ import annotations

import pytest

from erp_sync.shared.errors import DatabaseUnavailable, MessageDecodeError
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, Park, Retry, decide, failed_attempts, retry_span_ms

DELAYS = (1_000, 5_000, 30_000)


@pytest.mark.parametrize(
    ("failed_before", "expected"),
    [(0, Retry(1_000, 2)), (1, Retry(5_000, 3)), (2, Retry(30_000, 4)), (5, Retry(30_000, 7))],
)
def test_transient_error_is_retried_with_a_growing_then_capped_delay(failed_before, expected):
    assert decide(DatabaseUnavailable("down"), failed_before, DELAYS, max_attempts=10) == expected


def test_transient_error_is_parked_once_the_attempts_run_out():
    outcome = decide(DatabaseUnavailable("still down"), 9, DELAYS, max_attempts=10)

    assert isinstance(outcome, Park)
    assert "gave up after 10 attempts" in outcome.reason
    assert "still down" in outcome.reason


def test_permanent_error_is_parked_with_its_reason_at_once():
    outcome = decide(MessageDecodeError("invalid inventory.change event", raw=b"{}"), 0, DELAYS, 10)

    assert outcome == Park("MessageDecodeError: invalid inventory.change event")


def test_unexpected_error_is_parked_not_retried():
    outcome = decide(KeyError("sku"), 0, DELAYS, 10)

    assert isinstance(outcome, Park)
    assert outcome.reason.startswith("unexpected KeyError")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [(None, 0), ({}, 0), ({ATTEMPT_HEADER: 1}, 0), ({ATTEMPT_HEADER: 4}, 3), ({ATTEMPT_HEADER: "x"}, 0)],
)
def test_failed_attempts_are_read_from_the_attempt_header(headers, expected):
    assert failed_attempts(headers) == expected


@pytest.mark.parametrize(("delays_ms", "max_attempts", "span_ms"), [
    ((1_000, 5_000, 30_000, 120_000, 600_000), 25, 756_000 + 19 * 600_000),  # the defaults: 3.4 h
    ((1_000, 5_000), 2, 1_000),  # one wait, before the second and last try
    ((1_000, 5_000), 1, 0),  # no retry at all
    ((7_000,), 10**12, (10**12 - 1) * 7_000),  # worked out, not counted one by one
])
def test_the_retry_path_span_is_every_wait_before_the_last_try(delays_ms, max_attempts, span_ms):
    assert retry_span_ms(delays_ms, max_attempts) == span_ms

    # the same as the delays decide() hands out, try after try
    if max_attempts < 100:
        waits = [decide(DatabaseUnavailable("down"), failed, delays_ms, max_attempts) for failed in range(max_attempts)]
        assert sum(wait.delay_ms for wait in waits if isinstance(wait, Retry)) == span_ms
