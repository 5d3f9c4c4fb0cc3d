"""Within one media message, a host that keeps failing for now is not asked for the rest of its images."""
from __future__ import annotations

from erp_sync.workers.host_breaker import HostBreaker

DOWN, UP = "https://down.example/a.jpg", "https://up.example/a.jpg"


def test_a_host_is_deferred_after_three_failures_since_its_last_success_and_others_are_not():
    breaker = HostBreaker()
    for _ in range(2):
        breaker.failed(DOWN)
    assert breaker.deferral(DOWN) is None

    breaker.failed(DOWN)

    deferred = breaker.deferral("https://down.example/b.jpg")
    assert deferred is not None and str(deferred) == (
        "not tried: 3 downloads from down.example failed for now in this message")
    assert deferred.url == "https://down.example/b.jpg"
    assert breaker.deferral(UP) is None


def test_a_flaky_host_that_serves_in_between_is_never_deferred():
    breaker = HostBreaker()
    for _ in range(10):
        breaker.failed(DOWN)
        breaker.failed(DOWN)
        breaker.served(DOWN)

    assert breaker.deferral(DOWN) is None
