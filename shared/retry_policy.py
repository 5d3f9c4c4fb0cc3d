"""What to do with a message whose handling failed: retry after a delay, or park it."""
from __future__ import annotations

from dataclasses import dataclass

from erp_sync.shared.errors import PermanentError, TransientError

ATTEMPT_HEADER = "x-erp-sync-attempt"
PARK_REASON_HEADER = "x-erp-sync-park-reason"
LAST_ERROR_HEADER = "x-erp-sync-last-error"
PARKED_AT_HEADER = "x-erp-sync-parked-at"
# A quorum queue's count of the deliveries of a message that ended without an ack; from RabbitMQ
# 4.3 only of those a consumer refused, the others being in the count of all its acquisitions.
DELIVERY_COUNT_HEADER = "x-delivery-count"
ACQUIRED_COUNT_HEADER = "x-acquired-count"
RETURN_COUNT_HEADERS = (DELIVERY_COUNT_HEADER, ACQUIRED_COUNT_HEADER)


@dataclass(frozen=True)
class Retry:
    """Send it round the delay queue of `delay_ms`; this will be attempt number `attempt`."""

    delay_ms: int
    attempt: int


@dataclass(frozen=True)
class Park:
    """Move it to the parking queue; `reason` says why it can never succeed."""

    reason: str


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def decide(
    error: BaseException, failed_attempts: int, delays_ms: tuple[int, ...], max_attempts: int
) -> Retry | Park:
    """Retry a transient error with a growing delay until `max_attempts`; park everything else.

    `failed_attempts` counts the attempts that failed before this one.
    """
    if isinstance(error, TransientError):
        attempt = failed_attempts + 1
        if attempt >= max_attempts:
            return Park(f"gave up after {attempt} attempts; last error {describe(error)}")
        return Retry(delays_ms[min(failed_attempts, len(delays_ms) - 1)], attempt + 1)
    if isinstance(error, PermanentError):
        return Park(describe(error))
    # A bug fails the same way every time; retrying would only hide it.
    return Park(f"unexpected {describe(error)}")


def retry_span_ms(delays_ms: tuple[int, ...], max_attempts: int) -> int:
    """The longest a message spends waiting in the retry path before it is applied or parked."""
    waits = max(max_attempts - 1, 0)  # a delay after each failed attempt but the last
    listed = delays_ms[:waits]
    return sum(listed) + (waits - len(listed)) * delays_ms[-1]


def failed_attempts(headers: dict[str, object] | None) -> int:
    """How many attempts failed before, read from the message's headers."""
    value = (headers or {}).get(ATTEMPT_HEADER, 1)
    return max(int(value) - 1, 0) if isinstance(value, int) else 0
