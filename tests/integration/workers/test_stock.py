"""The per-SKU stock rule against real PostgreSQL: newer figures win, deltas count once."""
from __future__ import annotations

import threading
import uuid
from functools import partial
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from erp_sync.ingress.availability import stock_history
from erp_sync.shared.erp_events import InventoryChange
from erp_sync.shared.models import Order, ProcessedEvent, StockChange, StockChangeOutcome, StockHold, StockLevel
from tests.support.race import blocked_or_done, race_both_ways
from tests.support.waiting import wait_for
from erp_sync.workers.inventory import apply_inventory_change
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import NO_TOTAL_YET, Delta, Total

T0 = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
APPLIED, STALE = StockChangeOutcome.APPLIED, StockChangeOutcome.STALE


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:12]}"


def level(session: Session, sku: str) -> StockLevel | None:
    return session.execute(select(StockLevel).where(StockLevel.sku == sku)).scalar_one_or_none()


def quantity(session: Session, sku: str) -> int | None:
    return session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku))


def absolute(session: Session, sku: str, qty: int, at: datetime, event_id: str | None = None, **context):
    event = StockEvent(event_id or f"evt_{uuid.uuid4()}", sku, Total(qty, at), **context)
    return apply_stock_events(session, [event])[0].outcome


def delta(session: Session, sku: str, change: int, at: datetime, event_id: str | None = None):
    event = StockEvent(event_id or f"evt_{uuid.uuid4()}", sku, Delta(change, at))
    return apply_stock_events(session, [event])[0].outcome


def test_first_absolute_figure_sets_the_stock(db_session):
    # given a SKU with no figure yet
    sku = new_sku()

    # when the ERP reports 50 of it
    outcome = absolute(db_session, sku, 50, T0)

    # then 50 is its figure as of the ERP's timestamp
    assert outcome is APPLIED
    row = level(db_session, sku)
    assert (row.erp_quantity, row.erp_as_of) == (50, T0)


def test_newer_absolute_figure_replaces_the_older(db_session):
    # given 50 as of T0
    sku = new_sku()
    absolute(db_session, sku, 50, T0)

    # when 49 arrives as of a minute later
    outcome = absolute(db_session, sku, 49, T0 + timedelta(minutes=1))

    # then 49 stands
    assert outcome is APPLIED
    assert quantity(db_session, sku) == 49


def test_older_absolute_figure_is_ignored_and_recorded_stale(db_session):
    # given 49 as of 10:05
    sku = new_sku()
    absolute(db_session, sku, 49, T0 + timedelta(minutes=5))

    # when 50 as of 10:00 arrives late
    outcome = absolute(db_session, sku, 50, T0, event_id="evt_late", location_id="WH-MAIN", reason="RECOUNT")

    # then 49 stays, and the history says the late figure was stale, next to what stood instead
    assert outcome is STALE
    assert quantity(db_session, sku) == 49
    latest = stock_history(db_session, sku).changes[0]
    assert (latest.event_id, latest.outcome, latest.quantity, latest.resulting_quantity) == ("evt_late", "stale", 50, 49)
    assert (latest.location_id, latest.reason, latest.erp_timestamp) == ("WH-MAIN", "RECOUNT", T0)


def test_figure_with_the_same_timestamp_wins_as_the_later_arrival(db_session):
    # given 50 as of T0 (ERP timestamps may have second resolution)
    sku = new_sku()
    absolute(db_session, sku, 50, T0)

    # when 49 arrives with the very same timestamp
    outcome = absolute(db_session, sku, 49, T0)

    # then the later arrival wins
    assert outcome is APPLIED
    assert quantity(db_session, sku) == 49


def received(ms: int) -> datetime:
    """When the door received an event, `ms` milliseconds after T0 on its clock."""
    return T0 + timedelta(milliseconds=ms)


def test_of_figures_with_the_same_timestamp_the_one_the_door_received_later_stands(db_session):
    # given 8 as of T0, which the door received after a figure of 9 stamped the same second
    sku = new_sku()
    apply_stock_events(db_session, [StockEvent("evt_8", sku, Total(8, T0, received(300)))])

    # when that 9 is applied after it (a slower worker committing last)
    outcome = apply_stock_events(db_session, [StockEvent("evt_9", sku, Total(9, T0, received(0)))])[0].outcome

    # then it is stale and 8 stands, with its receipt stamp
    assert outcome is STALE
    assert (quantity(db_session, sku), level(db_session, sku).received_at) == (8, received(300))


def test_a_sale_keeps_the_receipt_stamp_of_the_total_it_builds_on(db_session):
    # given 10 as of T0, received by the door
    sku = new_sku()
    apply_stock_events(db_session, [StockEvent("evt_10", sku, Total(10, T0, received(300)))])

    # when a sale of the next second arrives, then a total of T0 the door received earlier
    delta(db_session, sku, -1, T0 + timedelta(seconds=1))
    outcome = apply_stock_events(db_session, [StockEvent("evt_12", sku, Total(12, T0, received(0)))])[0].outcome

    # then the earlier-received total is stale: the figure still builds on the later one
    assert outcome is STALE
    assert (quantity(db_session, sku), level(db_session, sku).received_at) == (9, received(300))


def test_a_slower_worker_committing_an_older_figure_of_the_same_second_last_does_not_put_it_back(db_engine):
    # given two SKUs: X, whose row another transaction holds, and Y at 10
    skus = sorted([new_sku(), new_sku()])
    x, y = skus
    with Session(db_engine) as session, session.begin():
        absolute(session, x, 5, T0 - timedelta(hours=1))
        absolute(session, y, 10, T0 - timedelta(hours=1))
    errors: list[BaseException] = []

    def slow_worker() -> None:
        # a batch of X's figure and Y's 9 of T0 (the door received it first): waits for X's lock
        try:
            with Session(db_engine) as session, session.begin():
                apply_stock_events(session, [StockEvent(f"evt_x_{uuid.uuid4()}", x, Total(4, T0, received(0))),
                                             StockEvent(f"evt_9_{uuid.uuid4()}", y, Total(9, T0, received(100)))])
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    try:
        with Session(db_engine) as holder, holder.begin():
            holder.execute(select(StockLevel).where(StockLevel.sku == x).with_for_update())
            thread = threading.Thread(target=slow_worker)
            thread.start()
            wait_for(lambda: blocked_or_done(db_engine, thread))
            # when the other worker applies Y's 8 of the same second (received later) and commits first
            with Session(db_engine) as session, session.begin():
                apply_stock_events(session, [StockEvent(f"evt_8_{uuid.uuid4()}", y, Total(8, T0, received(400)))])
        # and the slow one commits once X's row is free
        thread.join(timeout=30)

        # then Y shows the ERP's last figure, 8, not the 9 committed last
        assert errors == [] and not thread.is_alive()
        with Session(db_engine) as session:
            assert quantity(session, y) == 8
            assert quantity(session, x) == 4
    finally:
        with Session(db_engine) as session, session.begin():
            event_ids = select(StockChange.event_id).where(StockChange.sku.in_(skus)).scalar_subquery()
            session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(event_ids)))
            session.execute(delete(StockChange).where(StockChange.sku.in_(skus)))
            session.execute(delete(StockLevel).where(StockLevel.sku.in_(skus)))


def test_delta_adds_to_the_figure(db_session):
    # given 50 as of T0
    sku = new_sku()
    absolute(db_session, sku, 50, T0)

    # when a POS sale of one arrives as a delta
    outcome = delta(db_session, sku, -1, T0 + timedelta(seconds=30))

    # then 49 stands, still anchored on the total of T0
    assert outcome is APPLIED
    row = level(db_session, sku)
    assert (row.erp_quantity, row.erp_as_of) == (49, T0)
    assert stock_history(db_session, sku).changes[0].resulting_quantity == 49


def test_delta_older_than_the_absolute_figure_is_stale(db_session):
    # given 49 as of 10:05, a total that already counts everything before it
    sku = new_sku()
    absolute(db_session, sku, 49, T0 + timedelta(minutes=5))

    # when a sale of 10:00 arrives late as a delta
    outcome = delta(db_session, sku, -1, T0)

    # then it is not counted twice
    assert outcome is STALE
    assert quantity(db_session, sku) == 49
    assert stock_history(db_session, sku).changes[0].outcome == "stale"


def test_deltas_count_once_whatever_order_they_arrive_in(db_session):
    # given 50 as of T0
    sku = new_sku()
    absolute(db_session, sku, 50, T0)

    # when a sale of 10:02 arrives before a goods receipt of 10:01
    outcomes = [delta(db_session, sku, -1, T0 + timedelta(minutes=2)), delta(db_session, sku, 10, T0 + timedelta(minutes=1))]

    # then both count
    assert outcomes == [APPLIED, APPLIED]
    assert quantity(db_session, sku) == 59


def test_delta_for_a_sku_without_a_figure_applies_onto_zero_until_the_first_total(db_session):
    # given a SKU the ERP never reported a total for
    sku = new_sku()

    # when goods receipts arrive as deltas, the later one first
    delta(db_session, sku, 5, T0 + timedelta(minutes=2))
    outcome = delta(db_session, sku, 10, T0 + timedelta(minutes=1))

    # then they add up from nothing, not yet anchored on any total
    assert outcome is APPLIED
    row = level(db_session, sku)
    assert (row.erp_quantity, row.erp_as_of) == (15, NO_TOTAL_YET)

    # when the ERP's first total arrives, one older than the deltas
    assert absolute(db_session, sku, 12, T0) is APPLIED

    # then the ERP's total replaces the guess, and the receipts stamped after it, which it
    # cannot contain, still count
    assert quantity(db_session, sku) == 27

    # and a total newer than both receipts replaces them all
    assert absolute(db_session, sku, 30, T0 + timedelta(minutes=3)) is APPLIED
    assert quantity(db_session, sku) == 30


def test_total_arriving_after_a_later_sale_keeps_the_sale(db_session):
    # given 50 as of an hour ago, and a POS sale at 10:01 already applied
    sku = new_sku()
    absolute(db_session, sku, 50, T0 - timedelta(hours=1))
    delta(db_session, sku, -1, T0 + timedelta(minutes=1))

    # when the ERP's total of 10:00, delayed in transit, arrives after the sale
    outcome = absolute(db_session, sku, 50, T0)

    # then the total applies but the shop still shows the unit sold at 10:01 as gone
    assert outcome is APPLIED
    row = level(db_session, sku)
    assert (row.erp_quantity, row.erp_as_of) == (49, T0)
    assert stock_history(db_session, sku).changes[0].resulting_quantity == 49


@pytest.mark.parametrize("receipt_first", [True, False], ids=["receipt first", "total first"])
def test_a_receipt_of_a_totals_own_second_is_not_counted_on_top_of_it(db_session, receipt_first):
    # given 10 in stock, then in one second of the ERP's clock a receipt of 5 and a sale, sent as a
    # delta and as the total after both (14): whole-second stamps cannot tell which came first
    sku = new_sku()
    absolute(db_session, sku, 10, T0 - timedelta(hours=1))
    receipt = partial(delta, db_session, sku, 5, T0)
    total = partial(absolute, db_session, sku, 14, T0)

    # when both arrive, in either order
    outcomes = [receipt(), total()] if receipt_first else [total(), receipt()]

    # then the shop shows the ERP's 14, never 19: where the rule cannot tell, it leans low
    assert quantity(db_session, sku) == 14
    assert outcomes == ([APPLIED, APPLIED] if receipt_first else [APPLIED, STALE])


def test_a_receipt_the_sweeps_snapshot_may_hold_is_not_counted_again(db_session):
    # given a SKU the sweep corrected to 100 from a snapshot begun at T0 and read in full 10 s later
    sku = new_sku()
    absolute(db_session, sku, 80, T0 - timedelta(hours=1))
    db_session.execute(update(StockLevel).where(StockLevel.sku == sku).values(
        erp_quantity=100, erp_as_of=T0, erp_unsure_before=T0 + timedelta(seconds=10)))

    # when a receipt and a sale stamped while it was read arrive late, then a receipt stamped after
    outcomes = [delta(db_session, sku, 50, T0 + timedelta(seconds=3)),
                delta(db_session, sku, -2, T0 + timedelta(seconds=4)),
                delta(db_session, sku, 5, T0 + timedelta(seconds=10))]

    # then the receipt the snapshot may hold is not counted on top of it; the sale and the later receipt are
    assert outcomes == [STALE, APPLIED, APPLIED]
    assert quantity(db_session, sku) == 103


@pytest.mark.parametrize("receipt_first", [True, False], ids=["receipt first", "total first"])
def test_a_receipt_the_correction_held_back_counts_once_a_total_that_cannot_hold_it_arrives(db_session,
                                                                                             receipt_first):
    # given a SKU the sweep corrected to 7 from a snapshot begun at T0 and read in full 2.2 s later
    sku = new_sku()
    absolute(db_session, sku, 80, T0 - timedelta(hours=1))
    db_session.execute(update(StockLevel).where(StockLevel.sku == sku).values(
        erp_quantity=7, erp_as_of=T0, erp_unsure_before=T0 + timedelta(seconds=2.2)))

    # when a receipt of 5 stamped T0 + 1 s and the ERP's total of T0 arrive, in either order
    receipt = partial(delta, db_session, sku, 5, T0 + timedelta(seconds=1))
    total = partial(absolute, db_session, sku, 10, T0)
    if receipt_first:
        receipt(), total()
    else:
        total(), receipt()

    # then the receipt counts on top of the total, which cannot hold it, whichever came first
    assert quantity(db_session, sku) == 15


def test_a_new_total_ends_the_span_a_correction_may_hold(db_session):
    # given a SKU the sweep corrected at T0 from a snapshot read in full at T0 + 10 s
    sku = new_sku()
    absolute(db_session, sku, 80, T0 - timedelta(hours=1))
    db_session.execute(update(StockLevel).where(StockLevel.sku == sku).values(
        erp_quantity=100, erp_as_of=T0, erp_unsure_before=T0 + timedelta(seconds=10)))

    # when the ERP's total of T0 + 5 s arrives, then a receipt of the second after it
    absolute(db_session, sku, 90, T0 + timedelta(seconds=5))
    outcome = delta(db_session, sku, 5, T0 + timedelta(seconds=6))

    # then the receipt counts: the total holds nothing after its own second
    assert outcome is APPLIED
    assert quantity(db_session, sku) == 95
    assert level(db_session, sku).erp_unsure_before is None


@st.composite
def deliveries(draw):
    """Totals at distinct times and deltas at any of them, in some arrival order."""
    seconds = draw(st.lists(st.integers(0, 20), unique=True, max_size=6))
    totals = [(T0 + timedelta(seconds=at), draw(st.integers(0, 100)), None) for at in seconds]
    deltas = draw(st.lists(st.tuples(st.integers(0, 20).map(lambda at: T0 + timedelta(seconds=at)),
                                     st.just(None), st.integers(-5, 5)), max_size=10))
    return draw(st.permutations(totals + deltas))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=deliveries())
def test_the_figure_is_the_newest_total_plus_the_deltas_since_whatever_the_arrival_order(db_session, arrivals):
    # given totals and deltas of one SKU arriving in any order
    sku = new_sku()
    for at, total, change in arrivals:
        if total is not None:
            absolute(db_session, sku, total, at)
        else:
            delta(db_session, sku, change, at)

    # then the figure is the newest total plus every delta stamped after its second and the sales
    # of its second, whose receipts it may hold (or the sum of the deltas while there is no total)
    totals = [(at, total) for at, total, _ in arrivals if total is not None]
    newest_at, newest_total = max(totals) if totals else (NO_TOTAL_YET, 0)
    since = sum(change for at, total, change in arrivals
                if total is None and (at > newest_at or (at == newest_at and change < 0)))
    assert quantity(db_session, sku) == (newest_total + since if arrivals else None)


def test_history_lists_every_change_newest_first_with_its_event(db_session):
    # given three figures of one SKU, one of them stale, and a figure of another SKU
    sku = new_sku()
    absolute(db_session, sku, 50, T0, event_id="evt_a", location_id="WH-MAIN", reason="GOODS_RECEIPT")
    delta(db_session, sku, -1, T0 + timedelta(minutes=1), event_id="evt_b")
    absolute(db_session, sku, 60, T0 - timedelta(minutes=1), event_id="evt_c")
    absolute(db_session, new_sku(), 7, T0)

    # when the history is read
    history = stock_history(db_session, sku).changes

    # then it shows this SKU's changes, newest first, each with its event and what became of it
    assert [(c.event_id, c.kind, c.outcome, c.resulting_quantity) for c in history] == [
        ("evt_c", "absolute", "stale", 49),
        ("evt_b", "delta", "applied", 49),
        ("evt_a", "absolute", "applied", 50),
    ]
    assert (history[2].location_id, history[2].reason) == ("WH-MAIN", "GOODS_RECEIPT")
    assert [c.event_id for c in stock_history(db_session, sku, limit=2).changes] == ["evt_c", "evt_b"]


def inventory_change(sku: str, event_id: str, qty: int, at: datetime) -> InventoryChange:
    return InventoryChange.model_validate({
        "event_id": event_id, "event_type": "inventory.change", "timestamp": at,
        "data": {"sku": sku, "new_quantity": qty},
    })


@pytest.fixture
def race_sku(db_engine):
    sku = new_sku()
    yield sku
    with Session(db_engine) as session, session.begin():
        event_ids = select(StockChange.event_id).where(StockChange.sku == sku).scalar_subquery()
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(event_ids)))
        session.execute(delete(StockChange).where(StockChange.sku == sku))
        session.execute(delete(StockLevel).where(StockLevel.sku == sku))


def test_two_processes_racing_on_one_sku_never_go_backwards(db_engine, race_sku):
    # given 200 figures of one SKU, each delivered to two workers: one takes them oldest first,
    # the other newest first, each committing one event per transaction on its own connection
    events = [inventory_change(race_sku, f"evt_race_{uuid.uuid4()}", qty, T0 + timedelta(seconds=qty))
              for qty in range(200)]

    # when they race
    errors = race_both_ways(db_engine, apply_inventory_change, events)

    # then nothing failed, the newest figure stands, every figure had its effect once,
    # and the figures applied, in the order they were applied, only ever moved forward
    assert errors == []
    with Session(db_engine) as session:
        assert quantity(session, race_sku) == 199
        history = session.scalars(select(StockChange).where(StockChange.sku == race_sku).order_by(StockChange.id)).all()
    outcomes = {event.event_id: sorted(c.outcome for c in history if c.event_id == event.event_id) for event in events}
    assert all(len(o) == 2 and o.count("duplicate") == 1 for o in outcomes.values())
    applied = [c.erp_timestamp for c in history if c.outcome == "applied"]
    assert applied == sorted(applied)


def test_a_total_and_later_sales_racing_on_one_sku_lose_no_sale(db_engine, race_sku):
    # given totals of 1,000 at even seconds and sales of one unit at odd seconds, each delivered to
    # two workers: one takes them oldest first, the other newest first, one transaction per event
    events = [
        inventory_change(race_sku, f"evt_race_{uuid.uuid4()}", 1000, T0 + timedelta(seconds=second))
        if second % 2 == 0 else
        InventoryChange.model_validate({
            "event_id": f"evt_race_{uuid.uuid4()}", "event_type": "inventory.change",
            "timestamp": T0 + timedelta(seconds=second), "data": {"sku": race_sku, "quantity_change": -1},
        })
        for second in range(200)
    ]

    # when they race
    errors = race_both_ways(db_engine, apply_inventory_change, events)

    # then the newest total (second 198) stands with the one sale stamped after it
    assert errors == []
    with Session(db_engine) as session:
        assert quantity(session, race_sku) == 999


def open_holds(session: Session, sku: str) -> list[str]:
    held = select(StockHold.order_id).where(StockHold.sku == sku, StockHold.released_at.is_(None))
    return list(session.scalars(held))


def received_at_t0_holding(session: Session, sku: str) -> str:
    """An order the ERP received at T0 (on its clock) holding one unit of `sku`; its id."""
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    session.add(Order(order_id=order_id, order_date=T0, customer_ref="C-1", synced_at=T0, erp_received_at=T0))
    session.add(StockHold(order_id=order_id, sku=sku, quantity=1))
    session.flush()
    return order_id


def test_a_total_stamped_at_or_after_the_erps_receipt_releases_the_hold_a_delta_or_older_total_does_not(db_session):
    # given an order the ERP received at T0 (on its clock) holding one unit of a SKU
    sku = new_sku()
    order_id = received_at_t0_holding(db_session, sku)

    # when a total stamped before the acknowledgement and a later delta arrive
    absolute(db_session, sku, 50, T0 - timedelta(seconds=1))
    delta(db_session, sku, -1, T0 + timedelta(seconds=1))

    # then the order still holds its unit: neither may count the order yet
    assert open_holds(db_session, sku) == [order_id]

    # when a total stamped at the receipt arrives (the ERP's own figure for the order, stamped at the deduction)
    absolute(db_session, sku, 48, T0)

    # then the hold ends
    assert open_holds(db_session, sku) == []


def test_a_new_skus_first_total_releases_the_hold_its_placeholder_row_does_not_fire_for(db_session):
    # given an order the ERP received at T0 holding a SKU that has no stock row yet
    sku = new_sku()
    order_id = received_at_t0_holding(db_session, sku)

    # when a delta creates its row (a figure stamped NO_TOTAL_YET: the trigger's WHEN skips it)
    delta(db_session, sku, 5, T0 + timedelta(seconds=1))

    # then the hold stays: a sum of deltas does not count the order
    assert level(db_session, sku).erp_as_of == NO_TOTAL_YET
    assert open_holds(db_session, sku) == [order_id]

    # when the SKU's first total, stamped at the receipt, is written over that row in the same batch
    # as a brand new SKU's (lock inserts the placeholder, the write updates it: the catalog's path)
    other = new_sku()
    db_session.add(StockHold(order_id=order_id, sku=other, quantity=1))
    db_session.flush()
    apply_stock_events(db_session, [StockEvent(f"evt_{uuid.uuid4()}", sku, Total(48, T0)),
                                    StockEvent(f"evt_{uuid.uuid4()}", other, Total(7, T0))])

    # then both holds end
    assert open_holds(db_session, sku) == []
    assert open_holds(db_session, other) == []


def test_the_erps_figure_recorded_before_its_answer_ends_the_hold_once_the_answer_is_recorded(db_session):
    # given an order held and pushed, whose ERP answer is not recorded yet (no receipt mark)
    sku = new_sku()
    order_id = f"ORD-{uuid.uuid4().hex[:8]}"
    db_session.add(Order(order_id=order_id, order_date=T0, customer_ref="C-1"))
    db_session.add(StockHold(order_id=order_id, sku=sku, quantity=1))
    db_session.flush()

    # when the ERP's figure for the order, stamped at its deduction, is applied first
    absolute(db_session, sku, 48, T0)

    # then the hold stays: nothing yet says the ERP has the order
    assert open_holds(db_session, sku) == [order_id]

    # when the answer is recorded with the ERP's receipt at or before that stamp
    order = db_session.get(Order, order_id)
    order.synced_at, order.erp_received_at = T0 + timedelta(seconds=1), T0
    db_session.flush()

    # then the hold ends, though no figure arrived after the answer
    assert open_holds(db_session, sku) == []


@pytest.fixture
def held_sku(db_engine):
    """A SKU with a figure, and an order holding one unit of it that the ERP has not acknowledged yet; all committed."""
    sku, order_id = new_sku(), f"ORD-{uuid.uuid4().hex[:8]}"
    with Session(db_engine) as session, session.begin():
        absolute(session, sku, 50, T0 - timedelta(hours=1))
        session.add(Order(order_id=order_id, order_date=T0, customer_ref="C-1"))
        session.add(StockHold(order_id=order_id, sku=sku, quantity=1))
    yield sku, order_id
    with Session(db_engine) as session, session.begin():
        session.execute(delete(StockHold).where(StockHold.order_id == order_id))
        session.execute(delete(Order).where(Order.order_id == order_id))
        event_ids = select(StockChange.event_id).where(StockChange.sku == sku).scalar_subquery()
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.in_(event_ids)))
        session.execute(delete(StockChange).where(StockChange.sku == sku))
        session.execute(delete(StockLevel).where(StockLevel.sku == sku))


def acknowledge(session: Session, order_id: str) -> None:
    """Record the ERP's answer as the orders worker does: synced, received at T0 on the ERP's clock."""
    order = session.get(Order, order_id)
    order.status, order.synced_at, order.erp_received_at = "synced", T0 + timedelta(seconds=1), T0
    session.flush()


@pytest.mark.parametrize("first", ["figure", "answer"])
def test_the_erps_figure_and_its_answer_written_at_once_end_the_hold(db_engine, held_sku, first):
    # given an order holding a unit; the ERP's figure that counts it (stamped at its receipt) and the
    # ERP's answer are written by two transactions at once: one has written and not committed yet
    sku, order_id = held_sku
    figure = lambda session: absolute(session, sku, 49, T0)  # noqa: E731
    answer = lambda session: acknowledge(session, order_id)  # noqa: E731
    write_first, write_second = (figure, answer) if first == "figure" else (answer, figure)
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with Session(db_engine) as session, session.begin():
                write_second(session)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    with Session(db_engine) as session, session.begin():
        write_first(session)
        # when the other writes meanwhile, and the first commits once it has (or once it waits for the first)
        thread = threading.Thread(target=second_writer)
        thread.start()
        wait_for(lambda: blocked_or_done(db_engine, thread))
    thread.join(timeout=30)

    # then both landed and the hold has ended: neither transaction missed the other
    assert errors == [] and not thread.is_alive()
    with Session(db_engine) as session:
        assert quantity(session, sku) == 49
        assert open_holds(session, sku) == []
