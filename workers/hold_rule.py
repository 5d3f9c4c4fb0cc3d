"""When the ERP received an order, on the ERP's clock: the mark a stock figure must reach to end its holds.

The ERP deducts an order before it answers and stamps its figure at the deduction, so a figure
stamped at or after the order's receipt includes it. The answer's `Date` header is the ERP's clock
at the answer (whole seconds, rounded down); the receipt came at most one round trip earlier,
whatever the two clocks say. Without a `Date` header our send time stands in, less the clock-skew
margin. The mark is rounded down to the second so a whole-second ERP clock still reaches it. The
release itself is migration 0010's `release_counted_holds`, the one home of the comparison.
"""
from __future__ import annotations

from datetime import datetime, timedelta


def erp_receipt_mark(sent_at: datetime, answered_at: datetime, erp_date: datetime | None,
                     clock_skew_s: float) -> datetime:
    """The earliest ERP time at which the ERP can have received an order sent and answered at these times."""
    if erp_date is not None:
        mark = erp_date - max(answered_at - sent_at, timedelta(0))
    else:
        mark = sent_at - timedelta(seconds=clock_skew_s)
    return mark.replace(microsecond=0)
