"""The receipt mark: the ERP time a stock figure must reach to include an order."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from erp_sync.workers.hold_rule import erp_receipt_mark

SENT = datetime(2026, 12, 4, 12, 0, 0, 400_000, tzinfo=UTC)


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
def test_mark_is_a_lower_bound_of_the_receipt_on_the_erps_clock(answered_after_ms, erp_date, expected):
    # given an order sent at SENT and answered some ms later
    answered = SENT + timedelta(milliseconds=answered_after_ms)

    # when its mark is computed with a 1 s skew margin
    mark = erp_receipt_mark(SENT, answered, erp_date, clock_skew_s=1.0)

    # then it is the expected second
    assert mark == expected


def test_a_figure_stamped_at_the_deduction_in_whole_seconds_reaches_the_mark():
    # given an ERP that deducted at 12:00:00.950 (stamped 12:00:00) and answered at 12:00:00.990
    sent, answered = SENT + timedelta(milliseconds=500), SENT + timedelta(milliseconds=600)
    stamped = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)

    # then its figure is at or after the mark
    assert stamped >= erp_receipt_mark(sent, answered, datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC), 1.0)
