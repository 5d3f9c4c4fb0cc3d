"""The idempotency window's arithmetic: what a worker still applies always finds its record unpruned."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from erp_sync.shared.errors import ConfigurationError, EventTooOld
from erp_sync.shared.settings import load_settings
from erp_sync.workers.idempotency_window import IdempotencyWindow

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
DEFAULTS = IdempotencyWindow.of(load_settings())


@dataclass(frozen=True)
class Event:
    timestamp: datetime
    event_id: str = "evt-1"
    event_type: str = "inventory.change"


def test_the_default_window_is_thirty_days_and_an_event_inside_it_is_admitted():
    event = Event(NOW - timedelta(days=30) + timedelta(seconds=1))

    assert DEFAULTS.window == timedelta(days=30)
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
       dated_ahead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)),
       applied_after=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
       clocks_apart=st.timedeltas(min_value=-timedelta(hours=12), max_value=timedelta(hours=12)),
       before_close=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
# applied at once, dated as far ahead as the door allows, the database's clock an hour behind
@example(window=DEFAULTS, dated_ahead=timedelta(minutes=5), applied_after=timedelta(0),
         clocks_apart=-timedelta(hours=1), before_close=timedelta(0))
def test_a_copy_a_worker_still_applies_finds_its_record(window, dated_ahead, applied_after, clocks_apart, before_close):
    # given an event the door accepted (dated at most the future skew ahead of its clock), whose
    # record a worker wrote when it applied it, on a database clock up to half a day off
    dated = NOW + min(dated_ahead, window.future_skew)
    recorded_at = NOW + applied_after + clocks_apart
    # when a copy of it (a redelivery, a replay) reaches a worker as late as it is still applied
    arrives = dated + window.window - before_close
    assert window.admit(Event(dated), arrives)
    # then its record is still there at that moment
    assert recorded_at >= window.prune_cutoff(arrives)


def test_a_cutoff_before_the_calendar_begins_prunes_nothing():
    huge = IdempotencyWindow(timedelta(days=3650), timedelta(days=800_000))

    assert huge.prune_cutoff(NOW) is None


def test_the_window_must_outlast_the_oldest_event_the_door_accepts():
    with pytest.raises(ConfigurationError) as refused:
        load_settings(webhook_max_age_s=10 * 24 * 3600, idempotency_window_s=10 * 24 * 3600)

    assert str(refused.value).startswith("IDEMPOTENCY_WINDOW_S must be at least WEBHOOK_MAX_AGE_S plus a day")
    assert load_settings(webhook_max_age_s=10 * 24 * 3600, idempotency_window_s=11 * 24 * 3600)


def test_unset_the_window_widens_to_outlast_a_wider_door():
    wide_door = load_settings(webhook_max_age_s=60 * 24 * 3600)
    any_age = load_settings(webhook_max_age_s=10**12, webhook_max_future_skew_s=10**20)

    assert IdempotencyWindow.of(wide_door).window == timedelta(days=61)
    # a door open to events of any age: every event is applied, and no record is ever pruned
    assert IdempotencyWindow.of(any_age).admit(Event(datetime(1, 1, 2, tzinfo=UTC)), NOW)
    assert IdempotencyWindow.of(any_age).prune_cutoff(NOW) is None
