"""The throttle's decisions: the first occurrence mails, repeats within the period are counted, the count mails once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from erp_sync.shared.alert_throttle import State, on_occurrence, on_period_end

T0 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
PERIOD = timedelta(minutes=15)


def test_a_first_occurrence_mails_at_once():
    verdict, state = on_occurrence(T0, None, PERIOD)

    assert verdict.mail and verdict.unmailed == 0
    assert state == State(T0, 0)


def test_repeats_within_the_period_are_counted_not_mailed():
    verdict, state = on_occurrence(T0 + timedelta(minutes=5), State(T0, 2), PERIOD)

    assert not verdict.mail
    assert state == State(T0, 3)
    assert verdict.recheck_in_s == 600


def test_the_period_end_mails_the_count_once():
    end = T0 + PERIOD

    verdict, state = on_period_end(end, State(T0, 3), PERIOD)
    again, _ = on_period_end(end, state, PERIOD)

    assert verdict.mail and verdict.unmailed == 3 and verdict.since == T0
    assert state == State(end, 0)
    assert not again.mail


def test_a_period_end_before_its_time_waits():
    verdict, state = on_period_end(T0 + timedelta(minutes=10), State(T0, 1), PERIOD)

    assert not verdict.mail and verdict.recheck_in_s == 300
    assert state == State(T0, 1)


def test_an_occurrence_after_the_period_mails_with_the_count_nobody_mailed():
    # given a count left by a process that stopped before its period ended
    later = T0 + 2 * PERIOD

    verdict, state = on_occurrence(later, State(T0, 4), PERIOD)

    assert verdict.mail and verdict.unmailed == 4 and verdict.since == T0
    assert state == State(later, 0)
