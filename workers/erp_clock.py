"""The ERP's clock, read off one exchange with it: when, on that clock, the ERP can have acted.

The ERP stamps its figures on its own clock, rounded down to the second. An answer's `Date` header
is that clock at the answer (whole seconds, rounded down), written at some moment between our
request and its answer; so the ERP received the request at most one round trip before `Date`, and
its clock then ran at most `Date` + 1 s − our send time ahead of ours. Without a `Date` header (or
with one a day or more behind our clock, or further ahead than the door lets the ERP's stamps be)
our own times stand in, give or take the clock-skew margin (`ERP_CLOCK_SKEW_S`).

The orders worker marks when the ERP received an order (workers/hold_rule.py); the sweep marks when
the ERP can have begun its snapshot and when it must have finished it (workers/reconcile.py). No
SQLAlchemy here: the sweep's process has a memory target.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

# A `Date` further from our clock than this is broken, not a skewed clock (one in year 9999 made the
# order unreadable): our own times stand in, as without one.
IMPLAUSIBLE_CLOCK_OFFSET = timedelta(days=1)
WHOLE_SECOND = timedelta(seconds=1)  # the grain of the ERP's stamps and of HTTP dates


def http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def furthest_ahead(webhook_max_future_skew_s: int) -> timedelta:
    """How far ahead of ours the clock the ERP stamps with can run: the door refuses stamps further
    ahead (WEBHOOK_MAX_FUTURE_SKEW_S), so a `Date` beyond is another clock's (a server writing local
    time as GMT), and taken as the ERP's it would date our marks hours ahead of the ERP's figures."""
    return timedelta(seconds=webhook_max_future_skew_s) + WHOLE_SECOND


@dataclass(frozen=True, slots=True)
class ErpClock:
    """One exchange: our send time, when its answer came (our clock), the answer's `Date`, the skew margin,
    and how far ahead of ours a `Date` may be (`furthest_ahead`)."""

    sent_at: datetime
    answered_at: datetime
    erp_date: datetime | None
    skew: timedelta
    max_ahead: timedelta = IMPLAUSIBLE_CLOCK_OFFSET

    @property
    def _dated(self) -> bool:
        return self.erp_date is not None and (
            -IMPLAUSIBLE_CLOCK_OFFSET <= self.erp_date - self.answered_at
            and self.erp_date - self.answered_at <= self.max_ahead)

    def date_ignored(self) -> str | None:
        """Why the answer's `Date` was not taken for the ERP's clock, for a WARNING; None when it was, or had none."""
        if self.erp_date is None or self._dated:
            return None
        offset = (self.erp_date - self.answered_at).total_seconds()
        return (f"the ERP's answer is dated {self.erp_date.isoformat()}, {abs(offset):.0f} s "
                f"{'ahead of' if offset > 0 else 'behind'} our clock: not the clock it stamps its figures with "
                "(a server writing local time as GMT, or a proxy's clock?); ours stands in, give or take "
                "ERP_CLOCK_SKEW_S")

    def at_receipt(self) -> datetime:
        """The earliest ERP time at which the ERP can have received the request, rounded down to the second.

        A figure the ERP stamped before it can only be older than what the ERP did for the request.
        """
        if self.erp_date is not None and self._dated:
            mark = self.erp_date - max(self.answered_at - self.sent_at, timedelta(0))
        else:
            mark = self.sent_at - self.skew
        return mark.replace(microsecond=0)

    def latest_at(self, local: datetime) -> datetime:
        """The latest the ERP's clock can have shown at `local` on ours.

        A figure the ERP stamped at or after it was made after `local`.
        """
        if self.erp_date is not None and self._dated:
            return local + (self.erp_date + WHOLE_SECOND - self.sent_at)
        return local + self.skew
