"""The sweep's schedule: the next slot of a cron expression in a time zone, across DST changes."""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from erp_sync.workers.reconcile_schedule import next_run

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        # Berlin springs forward 2026-03-29 02:00 -> 03:00: 3 AM exists, now at UTC+2.
        ("0 3 * * *", BERLIN, datetime(2026, 3, 28, 3, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("0 3 * * *", BERLIN, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 1, 0, tzinfo=UTC)),
        # 02:30 does not exist that night: the sweep runs at 03:30 local, not never.
        ("30 2 * * *", BERLIN, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # Berlin falls back 2026-10-25 03:00 -> 02:00: 3 AM is at UTC+1.
        ("0 3 * * *", BERLIN, datetime(2026, 10, 24, 3, 0, tzinfo=BERLIN), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
        # 02:30 happens twice that night: the first one only.
        ("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("30 2 * * *", BERLIN, datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)),
        # New York springs forward 2026-03-08 and falls back 2026-11-01.
        ("0 3 * * *", NEW_YORK, datetime(2026, 3, 7, 9, 0, tzinfo=UTC), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        ("0 3 * * *", NEW_YORK, datetime(2026, 10, 31, 8, 0, tzinfo=UTC), datetime(2026, 11, 1, 8, 0, tzinfo=UTC)),
        ("0 3 * * *", ZoneInfo("UTC"), datetime(2026, 1, 1, 3, 0, tzinfo=UTC), datetime(2026, 1, 2, 3, 0, tzinfo=UTC)),
    ],
)
def test_next_run_is_the_next_local_slot(cron, tz, after, expected):
    # when the next slot after `after` is asked for
    slot = next_run(cron, tz, after)

    # then it is the expected instant, in UTC
    assert slot == expected and slot.tzinfo == UTC


def test_every_night_at_three_across_the_spring_change():
    # given the nights around Berlin's spring change
    slot = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    nights = []

    # when slots are taken one after the other
    for _ in range(4):
        slot = next_run("0 3 * * *", BERLIN, slot)
        nights.append(slot.astimezone(BERLIN).strftime("%m-%d %H:%M"))

    # then each night sweeps once, at 3 AM local
    assert nights == ["03-28 03:00", "03-29 03:00", "03-30 03:00", "03-31 03:00"]


def test_naive_after_is_refused():
    with pytest.raises(ValueError):
        next_run("0 3 * * *", BERLIN, datetime(2026, 1, 1))
