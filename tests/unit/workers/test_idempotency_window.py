"""The idempotency window's arithmetic: what a worker still applies always finds its record unpruned."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from erp_sync.shared.errors import ConfigurationError, EventTooOld
from erp_sync.shared.retry_policy import retry_span_ms
from erp_sync.shared.settings import load_settings
from erp_sync.workers.idempotency_window import IdempotencyWindow

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
DAY_S = 24 * 3600
DEFAULTS = IdempotencyWindow(timedelta(days=30), timedelta(minutes=5))  # the settings' defaults


@dataclass(frozen=True)
class Event:
    timestamp: datetime
    event_id: str = "evt-1"
    event_type: str = "inventory.change"


def test_the_default_window_is_thirty_days_and_an_event_inside_it_is_admitted():
    event = Event(NOW - timedelta(days=30) + timedelta(seconds=1))

    assert IdempotencyWindow.of(load_settings(_env_file=None)) == DEFAULTS
    assert DEFAULTS.admit(event, NOW) is event
    assert DEFAULTS.admit_all([event, event], NOW) == [event, event]


def test_an_event_dated_before_the_window_is_refused_naming_it_and_the_setting():
    with pytest.raises(EventTooOld) as refused:
        DEFAULTS.admit(Event(NOW - timedelta(days=30, seconds=1), event_id="evt-late"), NOW)

    assert "evt-late" in str(refused.value) and "IDEMPOTENCY_WINDOW_S" in str(refused.value)


def test_one_old_event_refuses_the_whole_batch():
    with pytest.raises(EventTooOld, match="evt-old"):
        DEFAULTS.admit_all([Event(NOW), Event(NOW - timedelta(days=31), event_id="evt-old")], NOW)


windows = st.builds(IdempotencyWindow,
                    window=st.timedeltas(min_value=timedelta(days=3), max_value=timedelta(days=3650)),
                    future_skew=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))


@given(window=windows,
       dated=st.timedeltas(min_value=-timedelta(days=4000), max_value=timedelta(days=2)),
       pruned_before=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=40)),
       worker_clock=st.timedeltas(min_value=-timedelta(hours=12), max_value=timedelta(hours=12)),
       pruning_clock=st.timedeltas(min_value=-timedelta(hours=12), max_value=timedelta(hours=12)))
# the copy arrives the moment its date leaves the window, just as a prune ran on a clock 12 h ahead
@example(window=DEFAULTS, dated=-DEFAULTS.window, pruned_before=timedelta(0), worker_clock=timedelta(0),
         pruning_clock=timedelta(hours=12))
def test_a_copy_a_worker_still_applies_finds_its_record(window, dated, pruned_before, worker_clock, pruning_clock):
    # given an event's record, and a copy of it (a redelivery, a replay) reaching a worker now, by its clock
    timestamp = NOW + dated
    try:
        window.admit(Event(timestamp), NOW + worker_clock)
    except EventTooOld:
        return
    # when the copy is applied, then no prune until now, by its own clock, took the record away
    assert timestamp >= window.dated_cutoff(NOW - pruned_before + pruning_clock)


@given(window=windows,
       dated_ahead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
       applied_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
       clocks_apart=st.timedeltas(min_value=-timedelta(hours=12), max_value=timedelta(hours=12)),
       before_close=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
# applied at once, dated as far ahead as the door allows, the database's clock an hour behind
@example(window=DEFAULTS, dated_ahead=timedelta(minutes=5), applied_after=timedelta(0),
         clocks_apart=-timedelta(hours=1), before_close=timedelta(0))
def test_a_copy_a_worker_still_applies_finds_its_undated_record(window, dated_ahead, applied_after, clocks_apart,
                                                                before_close):
    # given an event the door accepted (dated at most the future skew ahead of its clock), whose
    # record, without a date (before 0020), a worker wrote when it applied it, on a database clock up to half a day off
    dated = NOW + min(dated_ahead, window.future_skew)
    recorded_at = NOW + applied_after + clocks_apart
    # when a copy of it reaches a worker as late as it is still applied
    arrives = dated + window.window - before_close
    assert window.admit(Event(dated), arrives)
    # then its record is still there at that moment
    assert recorded_at >= window.undated_cutoff(arrives)


def test_a_cutoff_before_the_calendar_begins_prunes_nothing():
    huge = IdempotencyWindow(timedelta(days=800_000), timedelta(days=1))

    assert (huge.dated_cutoff(NOW), huge.undated_cutoff(NOW)) == (None, None)


def test_the_window_must_outlast_the_oldest_event_the_door_accepts_and_its_retries():
    # 10 days at the door, a retry path of 1 + 2 + 2 days (four attempts), a day of slack: 16 days
    door_and_retries = {"webhook_max_age_s": 10 * DAY_S, "retry_delays_ms": (DAY_S * 1000, 2 * DAY_S * 1000),
                        "max_delivery_attempts": 4}
    with pytest.raises(ConfigurationError) as refused:
        load_settings(**door_and_retries, idempotency_window_s=16 * DAY_S - 1)

    assert str(refused.value).startswith("IDEMPOTENCY_WINDOW_S must be at least WEBHOOK_MAX_AGE_S, the retry path")
    assert load_settings(**door_and_retries, idempotency_window_s=16 * DAY_S)
    assert load_settings(**door_and_retries).idempotency_window == timedelta(days=30)


@given(max_age_s=st.integers(1, 400 * DAY_S),
       delays_ms=st.lists(st.integers(1, 7 * DAY_S * 1000), min_size=1, max_size=6).map(sorted).map(tuple),
       attempts=st.integers(1, 60), widen_s=st.none() | st.integers(0, 100 * DAY_S))
def test_what_the_door_accepts_is_applied_after_its_whole_retry_path(max_age_s, delays_ms, attempts, widen_s):
    # given any settings the process starts with (the window unset, or set at least as wide as it must be)
    base = load_settings(webhook_max_age_s=max_age_s, retry_delays_ms=delays_ms, max_delivery_attempts=attempts)
    settings = base if widen_s is None else load_settings(
        webhook_max_age_s=max_age_s, retry_delays_ms=delays_ms, max_delivery_attempts=attempts,
        idempotency_window_s=int(base._shortest_idempotency_window) + widen_s)
    # when an event as old as the door accepts waits out every retry before a worker tries it last
    waited = timedelta(seconds=max_age_s, milliseconds=retry_span_ms(delays_ms, attempts))
    # then the worker still applies it
    assert IdempotencyWindow.of(settings).admit(Event(NOW - waited), NOW)


def test_unset_the_window_widens_to_outlast_a_wider_door():
    wide_door = load_settings(webhook_max_age_s=60 * 24 * 3600)
    any_age = load_settings(webhook_max_age_s=10**12, webhook_max_future_skew_s=10**20)

    # 60 days at the door, the default retry path (3.4 h: 1 + 5 + 30 + 120 s, then 600 s up to the 25th try), a day
    assert IdempotencyWindow.of(wide_door).window == timedelta(days=61, seconds=1 + 5 + 30 + 120 + 20 * 600)
    # a door open to events of any age: every event is applied, and no record is ever pruned
    assert IdempotencyWindow.of(any_age).admit(Event(datetime(1, 1, 2, tzinfo=UTC)), NOW)
    assert (IdempotencyWindow.of(any_age).dated_cutoff(NOW), IdempotencyWindow.of(any_age).undated_cutoff(NOW)) == (
        None, None)
