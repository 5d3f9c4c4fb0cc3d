"""The ERP's clock read off one exchange: the earliest ERP time of the request's receipt, the latest of a moment after."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from erp_sync.workers.erp_clock import ErpClock, furthest_ahead
from erp_sync.workers.snapshot_reader import Snapshot

SENT = datetime(2026, 12, 4, 12, 0, 0, 400_000, tzinfo=UTC)
SKEW = timedelta(seconds=1)


def exchange(answered_after_ms: int, erp_date: datetime | None, sent: datetime = SENT) -> ErpClock:
    return ErpClock(sent, sent + timedelta(milliseconds=answered_after_ms), erp_date, SKEW)


@pytest.mark.parametrize("answered_after_ms, erp_date, expected", [
    # the ERP's Date less the round trip, rounded down to the second
    (30, datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC), datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC)),
    (30, datetime(2026, 12, 4, 12, 0, 5, tzinfo=UTC), datetime(2026, 12, 4, 12, 0, 4, tzinfo=UTC)),
    # an ERP clock an hour behind ours: its own Date decides, not our clock
    (30, datetime(2026, 12, 4, 11, 0, 1, tzinfo=UTC), datetime(2026, 12, 4, 11, 0, 0, tzinfo=UTC)),
    # no Date header: our send time less the skew margin
    (30, None, datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC)),
    # a Date no clock shows (year 9999, or a day behind): as without one
    (30, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC)),
    (30, datetime(2026, 12, 3, 11, 0, 0, tzinfo=UTC), datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC)),
])
def test_the_receipt_mark_is_a_lower_bound_on_the_erps_clock(answered_after_ms, erp_date, expected):
    assert exchange(answered_after_ms, erp_date).at_receipt() == expected


@pytest.mark.parametrize(("erp_ahead", "taken"), [
    (timedelta(minutes=5), True),  # as far ahead as the door takes the ERP's stamps (WEBHOOK_MAX_FUTURE_SKEW_S)
    (timedelta(hours=5, minutes=30), False),  # local time written as GMT: not the clock of its stamps
    (-timedelta(hours=5, minutes=30), True),  # behind: its stamps pass the door, so it may be the ERP's clock
])
def test_a_date_further_ahead_than_the_door_takes_the_erps_stamps_is_not_its_clock(erp_ahead, taken):
    # given an answer dated `erp_ahead` of our clock, the door taking stamps up to 300 s ahead
    erp_date = (SENT + timedelta(milliseconds=25) + erp_ahead).replace(microsecond=0)
    clock = ErpClock(SENT, SENT + timedelta(milliseconds=40), erp_date, SKEW, furthest_ahead(300))

    # then it is taken for the ERP's clock within that bound; beyond, ours stands in, and the warning says so
    without_date = exchange(40, None).at_receipt()
    assert (clock.at_receipt() != without_date) is taken
    assert (clock.date_ignored() is None) is taken
    if not taken:
        assert "19800 s ahead of our clock" in (clock.date_ignored() or "")


def test_a_date_written_late_in_a_slow_answer_is_still_the_erps_clock():
    # given an answer that took 65 s, its Date written 35 s in on the same clock as ours, the door
    # taking stamps up to 30 s ahead
    erp_date = (SENT + timedelta(seconds=35)).replace(microsecond=0)
    clock = ErpClock(SENT, SENT + timedelta(seconds=65), erp_date, SKEW, furthest_ahead(30))

    # then it is taken: it is behind our clock at the answer, whatever the round trip
    assert clock.date_ignored() is None and clock.at_receipt() < SENT


def test_a_figure_stamped_at_the_deduction_in_whole_seconds_reaches_the_mark():
    # given an ERP that deducted at 12:00:00.950 (stamped 12:00:00) and answered at 12:00:00.990
    clock = exchange(100, datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC), sent=SENT + timedelta(milliseconds=500))
    stamped = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)

    # then its figure is at or after the mark
    assert stamped >= clock.at_receipt()


@pytest.mark.parametrize("erp_ahead", [timedelta(0), timedelta(seconds=0.7), timedelta(minutes=5), -timedelta(hours=1)])
def test_whatever_the_clocks_differ_by_the_erps_time_lies_between_the_two_marks(erp_ahead):
    # given an ERP whose clock runs `erp_ahead` of ours, answering 40 ms after SENT with its Date
    answered = SENT + timedelta(milliseconds=40)
    erp_now_at = (lambda local: local + erp_ahead)
    written = SENT + timedelta(milliseconds=25)  # when it wrote the answer's headers
    clock = ErpClock(SENT, answered, erp_now_at(written).replace(microsecond=0), SKEW)

    # then its clock at the receipt is no earlier than the first mark, and at any moment after the
    # answer no later than the second
    assert clock.at_receipt() <= erp_now_at(SENT + timedelta(milliseconds=10))
    later = answered + timedelta(seconds=30)
    assert erp_now_at(later) <= clock.latest_at(later)


def test_without_a_date_the_latest_is_our_clock_plus_the_skew_margin():
    assert exchange(40, None).latest_at(SENT) == SENT + SKEW


@pytest.mark.parametrize("file_modified, taken, read_until", [
    # no Last-Modified, or a file made in the second of the request (within the skew margin): the
    # request's marks
    (None, datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC), datetime(2026, 12, 4, 12, 0, 3, tzinfo=UTC)),
    (datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC), datetime(2026, 12, 4, 11, 59, 59, tzinfo=UTC),
     datetime(2026, 12, 4, 12, 0, 3, tzinfo=UTC)),
    # a file made ten minutes before: from its making, give or take the skew margin and its whole second
    (datetime(2026, 12, 4, 11, 50, 0, tzinfo=UTC), datetime(2026, 12, 4, 11, 49, 59, tzinfo=UTC),
     datetime(2026, 12, 4, 11, 50, 2, tzinfo=UTC)),
])
def test_a_snapshot_file_made_before_the_request_counts_from_its_making(file_modified, taken, read_until):
    # given the ERP's answer at 12:00:00 on its clock, 30 ms after our request, read in full 2 s later
    clock = exchange(30, datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC))
    snapshot = Snapshot("url", iter(()), clock, file_modified)

    assert snapshot.taken() == taken
    assert snapshot.read_until(SENT + timedelta(seconds=2)) == read_until
