"""The stock rule, once: a SKU's next figure from its current one and an incoming ERP event.

A figure is a quantity and `as_of`, the ERP timestamp of the total it builds on, which certainly
holds every change stamped before `as_of` and may hold those stamped from `as_of` until
`unsure_before`: an ERP that stamps in whole seconds may or may not have put a change of a total's
own second in it (one that stamps finer, a change of the very same stamp), and the sweep's snapshot
may or may not hold one stamped while it was read. Where the rule
cannot tell, it leans low: the shop may show less stock than the ERP has until the next total,
never more. Pure: no database; workers/stock.py loads what it needs and writes what it decides,
and the nightly sweep's set-based SQL (workers/reconcile_correct.py) is tested against it.

- A total stamped T replaces the figure unless the figure builds on a newer total, and the
  deltas already applied that it cannot hold (stamped after T's second, or after T itself where the
  ERP stamps finer) are added back onto it, so a total that arrives late never wipes out a later
  sale. A delta it may hold is added back only if it takes stock away. On a tie the total the
  door received later wins (`received_at`, shared/receipt_stamp.py): the ERP sends each event after
  the door answered the one before, so that is the ERP's later one, whichever worker process applies
  it and whenever it commits. Where either has no receipt stamp (a message queued by an earlier
  release's door, a figure written before migration 0024 or by the sweep), the later-arriving total
  wins, as a second total within the same second is more likely the later one.
- A delta adds to the figure unless it is older than the total the figure builds on (which then
  already contains it), or adds stock and may already be in it (stamped before `unsure_before`):
  both are stale. The second kind is held back, not forgotten: a later total that cannot hold it
  (one stamped inside a sweep's span, before the delta's second) adds it back. A delta never moves
  `as_of`: deltas commute, so each one counts exactly once whatever order they arrive in, whereas
  moving the mark would turn a late older delta stale.
- A SKU with no figure yet has `NO_FIGURE`: a delta applies onto 0 and leaves the figure
  `NO_TOTAL_YET`. A brand new item's first goods receipt is then exact, an unknown prior stock
  counts as none (the storefront never shows stock the ERP has not reported), and the ERP's first
  total, however old, replaces the guess (keeping the deltas stamped after it).
- An event seen before (a redelivery, a replay) changes nothing: a duplicate.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from erp_sync.shared.models import StockChangeOutcome
from erp_sync.workers.erp_clock import WHOLE_SECOND

# Older than any ERP timestamp: the quantity is a sum of deltas, not yet anchored on a total.
NO_TOTAL_YET = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Figure:
    """A SKU's stock as the ERP reported it: a quantity, built on the total stamped `as_of`.

    `unsure_before`: the changes stamped from `as_of` until then may already be in it; None for a
    total, which may hold those of its own stamp's grain (`_grain`). `received_at`: when the door
    received that total, None where unknown (the sweep's correction, an older figure).
    """

    quantity: int
    as_of: datetime
    unsure_before: datetime | None = None
    received_at: datetime | None = None

    def may_hold(self, stamped: datetime) -> bool:
        """Whether a change stamped then may or may not be in the figure already."""
        own_grain = self.as_of + _grain(self.as_of)
        # A span older than the total (kept by an earlier release's worker writing it) is no span.
        return self.as_of <= stamped < max(self.unsure_before or own_grain, own_grain)


def _grain(stamp: datetime) -> timedelta:
    """How finely the ERP stamped `stamp`: a whole second, unless it gives a fraction of one."""
    return WHOLE_SECOND if stamp.microsecond == 0 else timedelta(microseconds=1)


NO_FIGURE = Figure(0, NO_TOTAL_YET)


@dataclass(frozen=True, slots=True)
class Total:
    """An absolute figure (`new_quantity`) stamped by the ERP, received by the door at `received_at` if known."""

    quantity: int
    stamped: datetime
    received_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    """A difference (`quantity_change`) stamped by the ERP."""

    change: int
    stamped: datetime


Change = Total | Delta
AppliedDelta = tuple[datetime, int]  # (stamped, change) of a delta already counted in the figure
# (stamped, change) of a delta that added stock a figure may have held: stale, but a later total
# that cannot hold it counts it.
HeldBackDelta = tuple[datetime, int]


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of an event, and the SKU's figure after it."""

    outcome: StockChangeOutcome
    figure: Figure


def next_figure(
    current: Figure, applied_deltas: Iterable[AppliedDelta], change: Change, *, duplicate: bool = False,
    held_back: Iterable[HeldBackDelta] = (),
) -> Decision:
    """The outcome of `change` on a SKU at `current`, given the deltas applied since `current.as_of`
    and those held back since."""
    if duplicate:
        return Decision(StockChangeOutcome.DUPLICATE, current)
    if current.as_of > change.stamped:
        return Decision(StockChangeOutcome.STALE, current)
    if isinstance(change, Total):
        if current.as_of == change.stamped and received_later(current.received_at, change.received_at):
            return Decision(StockChangeOutcome.STALE, current)
        total = Figure(change.quantity, change.stamped)
        later = sum(delta for stamped, delta in applied_deltas
                    if stamped >= total.as_of and (delta < 0 or not total.may_hold(stamped)))
        later += sum(delta for stamped, delta in held_back if stamped >= total.as_of and not total.may_hold(stamped))
        return Decision(StockChangeOutcome.APPLIED,
                        Figure(total.quantity + later, total.as_of, received_at=change.received_at))
    if change.change > 0 and current.may_hold(change.stamped):
        return Decision(StockChangeOutcome.STALE, current)
    return Decision(StockChangeOutcome.APPLIED, Figure(current.quantity + change.change, current.as_of,
                                                       current.unsure_before, current.received_at))


def received_later(held: datetime | None, arriving: datetime | None) -> bool:
    """Whether what is held was received after what arrives, of the same ERP timestamp: then what
    arrives is the older. Unknown on either side, what arrives wins (the later arrival)."""
    return held is not None and arriving is not None and held > arriving


@dataclass
class Ledger:
    """One SKU's figure and applied deltas, as events pass through the rule in arrival order."""

    figure: Figure = NO_FIGURE
    applied_deltas: list[AppliedDelta] = field(default_factory=list)
    held_back: list[HeldBackDelta] = field(default_factory=list)

    def take(self, change: Change, *, duplicate: bool = False) -> Decision:
        """Decide `change` by the rule and carry its effect forward to the next event."""
        decision = next_figure(self.figure, self.applied_deltas, change, duplicate=duplicate, held_back=self.held_back)
        if decision.outcome is StockChangeOutcome.APPLIED:
            self.figure = decision.figure
            if isinstance(change, Delta):
                self.applied_deltas.append((change.stamped, change.change))
        elif (decision.outcome is StockChangeOutcome.STALE and isinstance(change, Delta) and change.change > 0
              and change.stamped >= self.figure.as_of):
            self.held_back.append((change.stamped, change.change))  # stale as the figure may hold it
        return decision
