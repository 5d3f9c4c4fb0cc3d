"""The stock rule on its own: newer totals win (of one second, the later-received), late totals keep later
deltas, deltas count once."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erp_sync.shared.models import StockChangeOutcome
from erp_sync.workers.stock_rule import NO_FIGURE, NO_TOTAL_YET, Decision, Delta, Figure, Ledger, Total, next_figure

T0 = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
APPLIED, STALE, DUPLICATE = StockChangeOutcome.APPLIED, StockChangeOutcome.STALE, StockChangeOutcome.DUPLICATE


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def received(ms: int) -> datetime:
    """When the door received an event: `ms` milliseconds into the hour of T0, on its own clock."""
    return T0 + timedelta(milliseconds=ms)


@pytest.mark.parametrize(
    ("current", "applied_deltas", "change", "expected"),
    [
        pytest.param(NO_FIGURE, [], Total(50, at(0)), Decision(APPLIED, Figure(50, at(0))),
                     id="a first total sets the figure"),
        pytest.param(Figure(50, at(0)), [], Total(49, at(1)), Decision(APPLIED, Figure(49, at(1))),
                     id="a newer total replaces the older"),
        pytest.param(Figure(49, at(5)), [], Total(50, at(0)), Decision(STALE, Figure(49, at(5))),
                     id="an older total is stale"),
        pytest.param(Figure(50, at(0)), [], Total(49, at(0)), Decision(APPLIED, Figure(49, at(0))),
                     id="on a tie without receipt stamps the later arrival wins"),
        pytest.param(Figure(50, at(0), received_at=received(2)), [], Total(49, at(0), received(1)),
                     Decision(STALE, Figure(50, at(0), received_at=received(2))),
                     id="on a tie a total the door received earlier is stale"),
        pytest.param(Figure(50, at(0), received_at=received(1)), [], Total(49, at(0), received(2)),
                     Decision(APPLIED, Figure(49, at(0), received_at=received(2))),
                     id="on a tie a total the door received later wins and keeps its receipt stamp"),
        pytest.param(Figure(50, at(0), received_at=received(1)), [], Total(49, at(0), received(1)),
                     Decision(APPLIED, Figure(49, at(0), received_at=received(1))),
                     id="on a tie of receipt stamps too the later arrival wins"),
        pytest.param(Figure(50, at(0)), [], Total(49, at(0), received(1)),
                     Decision(APPLIED, Figure(49, at(0), received_at=received(1))),
                     id="on a tie with a figure of no receipt stamp (older door, the sweep) the later arrival wins"),
        pytest.param(Figure(50, at(0), received_at=received(2)), [], Total(49, at(0)),
                     Decision(APPLIED, Figure(49, at(0))),
                     id="on a tie with a total of no receipt stamp (an older door's message) the later arrival wins"),
        pytest.param(Figure(50, at(1), received_at=received(1)), [], Total(49, at(0), received(2)),
                     Decision(STALE, Figure(50, at(1), received_at=received(1))),
                     id="an older total is stale however late the door received it"),
        pytest.param(Figure(50, at(0), received_at=received(1)), [], Delta(-1, at(0.5)),
                     Decision(APPLIED, Figure(49, at(0), received_at=received(1))),
                     id="a delta keeps the total's receipt stamp"),
        pytest.param(Figure(50, at(0)), [], Delta(-1, at(0.5)), Decision(APPLIED, Figure(49, at(0))),
                     id="a delta adds and keeps the total's timestamp"),
        pytest.param(Figure(50, at(0)), [], Delta(-1, at(0)), Decision(APPLIED, Figure(49, at(0))),
                     id="a sale stamped with the total's second counts"),
        pytest.param(Figure(14, at(0)), [], Delta(5, at(0)), Decision(STALE, Figure(14, at(0))),
                     id="a receipt of the total's own second may be in it: stale, the figure leans low"),
        pytest.param(Figure(14, at(0)), [], Delta(5, at(1 / 60)), Decision(APPLIED, Figure(19, at(0))),
                     id="a receipt of the next second counts"),
        pytest.param(Figure(14, at(0) + timedelta(milliseconds=500)), [], Delta(5, at(0) + timedelta(milliseconds=700)),
                     Decision(APPLIED, Figure(19, at(0) + timedelta(milliseconds=500))),
                     id="where the ERP stamps finer than seconds, a receipt after the total's stamp counts"),
        pytest.param(Figure(14, at(0) + timedelta(milliseconds=500)), [], Delta(5, at(0) + timedelta(milliseconds=500)),
                     Decision(STALE, Figure(14, at(0) + timedelta(milliseconds=500))),
                     id="where the ERP stamps finer than seconds, a receipt of the total's very stamp may be in it"),
        pytest.param(Figure(100, at(0), at(0.5)), [], Delta(50, at(0.25)), Decision(STALE, Figure(100, at(0), at(0.5))),
                     id="a receipt stamped while the sweep's snapshot was read may be in it: stale"),
        pytest.param(Figure(100, at(0), at(0.5)), [], Delta(-3, at(0.25)), Decision(APPLIED, Figure(97, at(0), at(0.5))),
                     id="a sale stamped while the sweep's snapshot was read counts, and the span stays"),
        pytest.param(Figure(100, at(0), at(0.5)), [], Delta(5, at(0.5)), Decision(APPLIED, Figure(105, at(0), at(0.5))),
                     id="a receipt stamped once the snapshot was read counts"),
        pytest.param(Figure(14, at(0), at(-1)), [], Delta(5, at(0)), Decision(STALE, Figure(14, at(0), at(-1))),
                     id="a span older than the total (an earlier release wrote the total) leaves its own second"),
        pytest.param(Figure(49, at(5)), [], Delta(-1, at(0)), Decision(STALE, Figure(49, at(5))),
                     id="a delta older than the total is stale"),
        pytest.param(NO_FIGURE, [], Delta(5, at(2)), Decision(APPLIED, Figure(5, NO_TOTAL_YET)),
                     id="a delta without a figure applies onto zero"),
        pytest.param(Figure(15, NO_TOTAL_YET), [(at(1), 10), (at(2), 5)], Total(12, at(0)),
                     Decision(APPLIED, Figure(27, at(0))),
                     id="a first total however old replaces the guess and keeps later deltas"),
        pytest.param(Figure(49, at(-60)), [(at(1), -1)], Total(50, at(0)), Decision(APPLIED, Figure(49, at(0))),
                     id="a late total keeps a later sale"),
        pytest.param(Figure(49, at(-60)), [(at(-30), -1), (at(0), -2), (at(1), 4)], Total(50, at(0)),
                     Decision(APPLIED, Figure(52, at(0))),
                     id="a total adds back the deltas stamped at or after it, no earlier ones"),
        pytest.param(Figure(15, at(-60)), [(at(0), 5)], Total(14, at(0)), Decision(APPLIED, Figure(14, at(0))),
                     id="a total does not add back a receipt of its own second: it may hold it"),
        pytest.param(Figure(49, at(5)), [], Total(60, at(6)), Decision(DUPLICATE, Figure(49, at(5))),
                     id="a duplicate changes nothing"),
    ],
)
def test_next_figure(current, applied_deltas, change, expected):
    # given a SKU's figure and the deltas applied since it
    # when an event arrives
    decision = next_figure(current, applied_deltas, change, duplicate=expected.outcome is DUPLICATE)

    # then the rule decides as the table says
    assert decision == expected


@st.composite
def arrivals(draw, last_second: int = 20):
    """Totals at distinct seconds and deltas at any of them, in some arrival order."""
    seconds = draw(st.lists(st.integers(0, last_second), unique=True, max_size=6))
    totals = [Total(draw(st.integers(0, 100)), T0 + timedelta(seconds=s)) for s in seconds]
    stamps = st.integers(0, last_second).map(lambda s: T0 + timedelta(seconds=s))
    deltas = draw(st.lists(st.builds(Delta, st.integers(-5, 5), stamps), max_size=10))
    return draw(st.permutations(totals + deltas))


@given(changes=arrivals())
def test_any_arrival_order_ends_at_the_newest_total_plus_the_deltas_stamped_since(changes):
    # given totals and deltas of one SKU arriving in any order
    ledger = Ledger()

    # when each passes through the rule
    for change in changes:
        ledger.take(change)

    # then the figure is the newest total plus every delta stamped after its second and the sales of
    # its second, whose receipts it may hold (or the sum of the deltas while there is no total)
    totals = [change for change in changes if isinstance(change, Total)]
    newest = max(totals, key=lambda total: total.stamped, default=Total(0, NO_TOTAL_YET))
    since = sum(change.change for change in changes if isinstance(change, Delta) and (
        change.stamped > newest.stamped or (change.stamped == newest.stamped and change.change < 0)))
    assert ledger.figure == Figure(newest.quantity + since, newest.stamped)


# Where a SKU may start: no figure, a total, or the sweep's correction, which may hold what the ERP
# stamped over the seconds its snapshot was read.
# Seconds 0 to 8, so that a span often holds totals and deltas both.
STARTS = st.one_of(
    st.just(NO_FIGURE),
    st.builds(lambda quantity, at: Figure(quantity, T0 + timedelta(seconds=at)), st.integers(0, 100), st.integers(0, 8)),
    st.builds(lambda quantity, at, span: Figure(quantity, T0 + timedelta(seconds=at), T0 + timedelta(seconds=at + span)),
              st.integers(0, 100), st.integers(0, 3), st.floats(1, 6)),
)


@settings(max_examples=200)
@given(start=STARTS, changes=arrivals(last_second=8), data=st.data())
def test_the_arrival_order_never_changes_where_a_sku_ends(start, changes, data):
    # given a SKU's start and the same events arriving in two orders
    other_order = data.draw(st.permutations(changes))

    # when each order passes through the rule, then both end at the same figure
    assert end_of(start, changes) == end_of(start, other_order)


def end_of(start: Figure, changes: list[Total | Delta]) -> Figure:
    """Where a SKU starting at `start` ends once `changes` passed through the rule in that order."""
    ledger = Ledger(start)
    for change in changes:
        ledger.take(change)
    return ledger.figure


def test_a_receipt_held_back_by_a_correction_counts_once_a_total_that_cannot_hold_it_arrives():
    # given the sweep's correction to 7, from a snapshot begun at 10:00 and read in full 2.2 s later,
    # then a receipt of 5 stamped at 10:00:01, which the snapshot may hold
    ledger = Ledger(Figure(7, at(0), at(0) + timedelta(seconds=2.2)))
    assert ledger.take(Delta(5, at(0) + timedelta(seconds=1))).outcome is STALE

    # when the ERP's total of 10:00:00 arrives, which cannot hold a receipt of the next second
    ledger.take(Total(10, at(0)))

    # then the receipt counts on top of it, as it would had it arrived after the total
    assert ledger.figure == Figure(15, at(0))


@given(changes=arrivals(), data=st.data())
def test_a_duplicate_anywhere_changes_nothing(changes, data):
    # given the same arrivals, once as they are and once with copies recorded as duplicates
    once, with_copies = Ledger(), Ledger()
    for change in changes:
        once.take(change)

    # when copies of some events arrive again among them
    for change in changes:
        with_copies.take(change)
        if data.draw(st.booleans()):
            assert with_copies.take(change, duplicate=True).outcome is DUPLICATE

    # then both end at the same figure, having counted the same deltas
    assert with_copies == once


@given(changes=arrivals())
def test_the_figure_only_moves_forward_and_a_stale_event_changes_nothing(changes):
    # given a SKU taking events in any order
    ledger = Ledger()
    for change in changes:
        before = ledger.figure

        # when an event passes through the rule
        decision = ledger.take(change)

        # then its total's timestamp never goes back, and an event that did not apply left the figure alone
        assert ledger.figure.as_of >= before.as_of
        if decision.outcome is not APPLIED:
            assert ledger.figure == before
        assert decision.figure == ledger.figure


@st.composite
def same_second_totals(draw, last_second: int = 3):
    """Totals, often several in one second, each received by the door at its own time, with deltas, in
    some arrival order (not the order the door received them: two workers commit in any order)."""
    seconds = draw(st.lists(st.integers(0, last_second), min_size=1, max_size=6))
    receipts = draw(st.lists(st.integers(0, 10_000), min_size=len(seconds), max_size=len(seconds), unique=True))
    totals = [Total(draw(st.integers(0, 100)), T0 + timedelta(seconds=second), received(ms))
              for second, ms in zip(seconds, receipts)]
    stamps = st.integers(0, last_second).map(lambda s: T0 + timedelta(seconds=s))
    deltas = draw(st.lists(st.builds(Delta, st.integers(-5, 5), stamps), max_size=6))
    return draw(st.permutations(totals + deltas))


@settings(max_examples=150)
@given(changes=same_second_totals())
def test_of_totals_in_one_second_the_one_received_last_wins_whatever_the_arrival_order(changes):
    # given totals of one SKU, several stamped in the same second, arriving in any order
    ledger = Ledger()

    # when each passes through the rule
    for change in changes:
        ledger.take(change)

    # then the figure is the newest second's total the door received last, plus the deltas as ever
    newest = max((change for change in changes if isinstance(change, Total)),
                 key=lambda total: (total.stamped, total.received_at))
    since = sum(change.change for change in changes if isinstance(change, Delta) and (
        change.stamped > newest.stamped or (change.stamped == newest.stamped and change.change < 0)))
    assert ledger.figure == Figure(newest.quantity + since, newest.stamped, received_at=newest.received_at)


@settings(max_examples=150)
@given(start=STARTS, changes=same_second_totals(last_second=8), data=st.data())
def test_with_receipt_stamps_the_arrival_order_never_changes_where_a_sku_ends(start, changes, data):
    # given a SKU's start (of no receipt stamp: a figure of before, the sweep's) and events of tied
    # seconds, each received by the door at its own time, arriving in two orders
    other_order = data.draw(st.permutations(changes))

    # when each order passes through the rule, then both end at the same figure
    assert end_of(start, changes) == end_of(start, other_order)
