"""The inventory worker against real PostgreSQL: spec 3.2's events, replays, deltas, unknown SKUs."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from erp_sync.ingress.availability import stock_history
from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.erp_events import decode_event
from erp_sync.shared.models import StockChange, StockLevel, Variant
from erp_sync.shared.receipt_stamp import receipt_headers
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, Park
from erp_sync.workers.catalog import apply_catalog_update
from erp_sync.workers.inventory import (
    apply_inventory_change,
)
from tests.support.factories import (
    catalog_event,
    encode,
    inventory_event,
    now_iso,
    variant_with,
)

T0 = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)


def event(document):
    return decode_event(encode(document))


def inventory(sku, *, at=timedelta(), event_id=None, **data):
    document = inventory_event(sku=sku, **data)
    document["timestamp"] = now_iso(at)
    if event_id:
        document["event_id"] = event_id
    return event(document)


def quantity(session, sku):
    return session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku))


def test_operational_scenario_pos_sale_takes_50_to_49(db_session):
    # given the spec's product with 50 in stock
    apply_catalog_update(event(catalog_event()), db_session)
    assert quantity(db_session, "IPH15-128-BLK") == 50

    # when a customer buys one in the store and the ERP fires spec 3.2's event
    outcome = apply_inventory_change(inventory("IPH15-128-BLK", at=timedelta(seconds=5)), db_session)

    # then the website's figure is 49, and the history says why
    assert outcome == "applied"
    assert quantity(db_session, "IPH15-128-BLK") == 49
    latest = stock_history(db_session, "IPH15-128-BLK").changes[0]
    assert (latest.quantity, latest.location_id, latest.reason) == (49, "WH-MAIN", "POS_SALE")


def test_out_of_order_absolute_figures_keep_the_newest(db_session):
    # given 49 reported at 10:05
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    apply_inventory_change(inventory(sku, new_quantity=49), db_session)

    # when the 50 of 10:00 arrives late
    outcome = apply_inventory_change(inventory(sku, new_quantity=50, at=timedelta(minutes=-5)), db_session)

    # then 49 stays and the late figure is on record as stale
    assert outcome == "stale"
    assert quantity(db_session, sku) == 49
    assert [c.outcome for c in stock_history(db_session, sku).changes] == ["stale", "applied"]


def test_replayed_event_changes_nothing_and_the_history_shows_the_duplicate(db_session):
    # given an event applied, then a newer figure
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    first = inventory(sku, new_quantity=49, at=timedelta(minutes=-1))
    apply_inventory_change(first, db_session)
    apply_inventory_change(inventory(sku, new_quantity=48), db_session)

    # when the first event is delivered again
    outcome = apply_inventory_change(first, db_session)

    # then nothing changes and the replay is on record
    assert outcome == "duplicate"
    assert quantity(db_session, sku) == 48
    latest = stock_history(db_session, sku).changes[0]
    assert (latest.event_id, latest.outcome, latest.quantity, latest.resulting_quantity) == (
        first.event_id, "duplicate", 49, 48)


def test_replayed_delta_is_applied_once(db_session):
    # given 50 in stock
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    apply_inventory_change(inventory(sku, new_quantity=50, at=timedelta(minutes=-1)), db_session)
    sale = inventory(sku, new_quantity=None, quantity_change=-1)

    # when the same sale arrives three times
    outcomes = [apply_inventory_change(sale, db_session) for _ in range(3)]

    # then it counted once
    assert outcomes == ["applied", "duplicate", "duplicate"]
    assert quantity(db_session, sku) == 49
    assert [(c.kind, c.delta) for c in stock_history(db_session, sku).changes][:3] == [("delta", -1)] * 3


def test_stock_of_a_sku_not_in_the_catalog_is_kept_and_shows_once_the_product_arrives(db_session):
    # given stock reported for a SKU the catalog does not know yet
    sku = f"NEW-{uuid.uuid4().hex[:8]}"
    outcome = apply_inventory_change(inventory(sku, new_quantity=7), db_session)
    assert outcome == "applied"
    assert db_session.get(Variant, sku) is None

    # when its product arrives (without a stock figure of its own)
    variant = variant_with(sku=sku)
    del variant["stock_quantity"]
    apply_catalog_update(event(catalog_event(product_group_id=f"PG-{sku}", variants=[variant])), db_session)

    # then the product shows the stock recorded before
    row = db_session.execute(
        select(Variant.sku, StockLevel.erp_quantity).join(StockLevel, StockLevel.sku == Variant.sku)
        .where(Variant.sku == sku)
    ).one()
    assert row == (sku, 7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    figures=st.lists(
        st.tuples(st.integers(-86_400, 86_400), st.integers(0, 10_000)),
        min_size=1, max_size=10, unique_by=lambda figure: figure[0],
    ),
    data=st.data(),
)
def test_any_interleaving_and_duplication_of_absolute_figures_ends_on_the_newest(db_session, figures, data):
    # given a SKU's absolute figures, each with its own ERP timestamp, some delivered more than once
    sku = f"SKU-{uuid.uuid4().hex}"
    events = [
        inventory_event(sku=sku, new_quantity=qty) | {"timestamp": (T0 + timedelta(seconds=offset)).isoformat()}
        for offset, qty in figures
    ]
    replays = data.draw(st.lists(st.sampled_from(events), max_size=6))
    deliveries = data.draw(st.permutations(events + replays))

    # when they are applied in that order
    for document in deliveries:
        apply_inventory_change(event(document), db_session)

    # then the figure with the newest timestamp stands, and every delivery is on record
    newest = max(figures)[1]
    assert quantity(db_session, sku) == newest
    history = stock_history(db_session, sku, limit=100).changes
    assert len(history) == len(deliveries)
    assert sum(c.outcome == "duplicate" for c in history) == len(replays)


def delivery(tag, body, headers=None):
    return Delivery(delivery_tag=tag, body=body, message_id=f"msg-{tag}", content_type="application/json",
                    headers=headers or {})


def test_through_the_consumer_a_malformed_body_is_parked_and_a_valid_one_stored(runner):
    # given the consumer's batch runner with the inventory handler
    batch_runner, sessions = runner
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    bodies = [
        b"{not json",
        encode(catalog_event()),
        encode(inventory_event(sku=sku, new_quantity=49)),
    ]

    # when a batch holds a malformed body, an event of the wrong kind and a valid one
    outcomes = batch_runner.run([delivery(tag, body) for tag, body in enumerate(bodies, start=1)])

    # then the first two are parked with their reason and the valid one is stored
    assert isinstance(outcomes[0], Park) and "MessageDecodeError" in outcomes[0].reason
    assert isinstance(outcomes[1], Park) and "expected event type inventory.change" in outcomes[1].reason
    assert outcomes[2] == Done()
    with sessions() as session:
        assert quantity(session, sku) == 49


def same_second_totals(sku: str) -> tuple[bytes, bytes]:
    """Two totals of `sku` the ERP stamped in one second: 9, then 8 (its last figure)."""
    second = (datetime.now(UTC) - timedelta(seconds=5)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return tuple(encode(inventory_event(sku=sku, new_quantity=qty) | {"timestamp": second}) for qty in (9, 8))


def test_of_two_totals_in_one_second_the_one_the_door_received_later_stands_though_applied_first(runner):
    # given two totals of one SKU in one second, 9 then 8, stamped by the door on receipt in that order
    batch_runner, sessions = runner
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    earlier, later = same_second_totals(sku)
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)

    # when a second worker commits the later one first, and the earlier one (a slower worker) after it
    # (the earlier one having gone round the retry path, its stamp still on it)
    assert batch_runner.run([delivery(1, later, receipt_headers(now_us + 300_000))]) == [Done()]
    assert batch_runner.run([delivery(2, earlier, receipt_headers(now_us) | {ATTEMPT_HEADER: 2})]) == [
        Done(outcome="stale")]

    # then the ERP's last figure stands, and the earlier one is recorded stale
    with sessions() as session:
        assert quantity(session, sku) == 8
        outcomes = session.execute(select(StockChange.quantity, StockChange.outcome).where(StockChange.sku == sku)
                                   .order_by(StockChange.id)).all()
    assert [tuple(row) for row in outcomes] == [(8, "applied"), (9, "stale")]


def test_of_two_totals_in_one_second_in_one_batch_the_one_the_door_received_later_stands(runner):
    # given the same two totals in one batch, the later-received first (two doors' publishes crossing)
    batch_runner, sessions = runner
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    earlier, later = same_second_totals(sku)
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)

    # when the batch is applied
    batch_runner.run([delivery(1, later, receipt_headers(now_us + 1)), delivery(2, earlier, receipt_headers(now_us))])

    # then the later-received figure stands
    with sessions() as session:
        assert quantity(session, sku) == 8


def test_a_total_with_no_receipt_stamp_wins_a_tie_as_the_later_arrival(runner):
    # given a total applied with the door's receipt stamp
    batch_runner, sessions = runner
    sku = f"SKU-{uuid.uuid4().hex[:8]}"
    earlier, later = same_second_totals(sku)
    batch_runner.run([delivery(1, later, receipt_headers())])

    # when a total of the same second arrives without one (queued by an earlier release's door)
    batch_runner.run([delivery(2, earlier)])

    # then the later arrival wins, as before receipt stamps
    with sessions() as session:
        assert quantity(session, sku) == 9
