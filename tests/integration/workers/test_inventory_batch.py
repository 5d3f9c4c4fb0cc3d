"""The set-based inventory batch against real PostgreSQL: it ends exactly where one by one would."""
from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from erp_sync.ingress.availability import stock_history
from erp_sync.shared.erp_events import InventoryChange
from erp_sync.shared.models import Order, ProcessedEvent, StockChange, StockHold, StockLevel
from erp_sync.workers.inventory import apply_inventory_batch, apply_inventory_change
from erp_sync.workers.stock_rule import NO_TOTAL_YET

T0 = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)


def change(sku: str, event_id: str, at: datetime, quantity: int | None = None, delta: int | None = None) -> InventoryChange:
    return InventoryChange.model_validate({
        "event_id": event_id, "event_type": "inventory.change", "timestamp": at,
        "data": {"sku": sku, "new_quantity": quantity, "quantity_change": delta,
                 "location_id": "WH-MAIN", "reason": "TEST"},
    })


def levels(session: Session, prefix: str) -> dict[str, tuple[int, datetime]]:
    rows = session.execute(select(StockLevel).where(StockLevel.sku.startswith(prefix))).scalars()
    return {row.sku.removeprefix(prefix): (row.erp_quantity, row.erp_as_of) for row in rows}


def history(session: Session, prefix: str) -> list[tuple]:
    rows = session.scalars(select(StockChange).where(StockChange.sku.startswith(prefix)).order_by(StockChange.id))
    return [(c.sku.removeprefix(prefix), c.event_id.removeprefix(prefix), c.kind, c.quantity, c.delta,
             c.resulting_quantity, c.outcome, c.location_id, c.reason, c.erp_timestamp) for c in rows]


def processed(session: Session, prefix: str) -> set[str]:
    ids = session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.startswith(prefix)))
    return {event_id.removeprefix(prefix) for event_id in ids}


def test_a_batch_resolves_each_skus_events_in_arrival_order(db_session):
    # given 10 of SKU-A as of T0, and a batch mixing figures, deltas, a stale pair and a replay
    sku, other = f"A-{uuid.uuid4().hex}", f"B-{uuid.uuid4().hex}"
    apply_inventory_change(change(sku, f"seed-{sku}", T0, quantity=10), db_session)
    sale = change(sku, f"sale-{sku}", T0 + timedelta(minutes=1), delta=-1)
    batch = [
        sale,
        change(other, f"new-{other}", T0 - timedelta(days=1), delta=3),
        change(sku, f"recount-{sku}", T0 + timedelta(minutes=2), quantity=20),
        sale,
        change(sku, f"late-{sku}", T0 + timedelta(minutes=1), delta=5),
        change(sku, f"old-{sku}", T0 + timedelta(minutes=1), quantity=1),
        change(sku, f"seed-{sku}", T0, quantity=10),
        change(sku, f"tie-{sku}", T0 + timedelta(minutes=2), quantity=21),
    ]

    # when it is applied at once
    outcomes = apply_inventory_batch(batch, db_session)

    # then each event had the effect it has one by one, and the history says so in arrival order
    assert outcomes == ["applied", "applied", "applied", "duplicate", "stale", "stale", "duplicate", "applied"]
    assert levels(db_session, sku) == {"": (21, T0 + timedelta(minutes=2))}
    assert levels(db_session, other) == {"": (3, NO_TOTAL_YET)}
    assert [(c.outcome, c.resulting_quantity) for c in reversed(stock_history(db_session, sku).changes)] == [
        ("applied", 10), ("applied", 9), ("applied", 20), ("duplicate", 20), ("stale", 20), ("stale", 20),
        ("duplicate", 20), ("applied", 21),
    ]


def test_a_batch_logs_one_line_and_a_line_for_each_event_not_applied(db_session, caplog):
    # given a SKU at 10, and a batch of two applied events, a stale total and a replayed event
    sku = f"LOG-{uuid.uuid4().hex}"
    apply_inventory_change(change(sku, f"seed-{sku}", T0, quantity=10), db_session)
    batch = [change(sku, f"sale-{sku}", T0 + timedelta(minutes=1), delta=-1),
             change(sku, f"recount-{sku}", T0 + timedelta(minutes=2), quantity=20),
             change(sku, f"old-{sku}", T0 + timedelta(minutes=1), quantity=1),
             change(sku, f"seed-{sku}", T0, quantity=10)]

    # when the batch is applied with the worker's INFO level
    caplog.set_level(logging.INFO, logger="erp_sync.workers.stock")
    apply_inventory_batch(batch, db_session)

    # then the operator reads one line for the batch and one for each event not applied
    assert [r.getMessage() for r in caplog.records if r.name == "erp_sync.workers.stock"] == [
        f"event old-{sku} for sku {sku} stale",
        f"event seed-{sku} for sku {sku} duplicate",
        f"stock events sale-{sku} to seed-{sku}: 2 applied, 1 stale, 1 duplicate",
    ]
    assert [r.event_id for r in caplog.records if r.levelno == logging.INFO and hasattr(r, "event_id")] == [
        f"old-{sku}", f"seed-{sku}"]


def test_a_lone_event_keeps_its_own_line_naming_it(db_session, caplog):
    # given a SKU's only event of a batch
    sku = f"ONE-{uuid.uuid4().hex}"

    # when it is applied with the worker's INFO level
    caplog.set_level(logging.INFO, logger="erp_sync.workers.stock")
    apply_inventory_batch([change(sku, f"only-{sku}", T0, quantity=3)], db_session)

    # then its line names it, and no batch line repeats it
    [line] = [r for r in caplog.records if r.name == "erp_sync.workers.stock"]
    assert (line.getMessage(), line.levelno, line.event_id) == (f"event only-{sku} for sku {sku} applied", logging.INFO,
                                                               f"only-{sku}")


def test_at_debug_every_event_has_its_line(db_session, caplog):
    # given a SKU's two events
    sku = f"DBG-{uuid.uuid4().hex}"
    batch = [change(sku, f"first-{sku}", T0, quantity=10), change(sku, f"second-{sku}", T0 + timedelta(minutes=1), delta=-2)]

    # when they are applied with LOG_LEVEL=DEBUG
    caplog.set_level(logging.DEBUG, logger="erp_sync.workers.stock")
    apply_inventory_batch(batch, db_session)

    # then each applied event is named on a line of its own
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG and r.name == "erp_sync.workers.stock"] == [
        f"event first-{sku} for sku {sku} applied", f"event second-{sku} for sku {sku} applied"]


@st.composite
def scenarios(draw):
    """Some SKUs seeded, then deliveries (replays among them) in an arrival order, cut into chunks."""
    sku_names = ["a", "b", "c"]
    at = st.integers(0, 4).map(lambda seconds: T0 + timedelta(seconds=seconds))  # ties are frequent
    amount = st.one_of(st.fixed_dictionaries({"quantity": st.integers(0, 100)}),
                       st.fixed_dictionaries({"delta": st.integers(-5, 5)}))
    seeds = [
        {"id": f"seed-{sku}", "sku": sku, "at": draw(at), **draw(amount)}
        for sku in sku_names if draw(st.booleans())
    ]
    events = [
        {"id": f"evt-{number}", "sku": draw(st.sampled_from(sku_names)), "at": draw(at), **draw(amount)}
        for number in range(draw(st.integers(1, 25)))
    ]
    replays = draw(st.lists(st.sampled_from(events + seeds), max_size=8))
    deliveries = draw(st.permutations(events + replays))
    chunks, start = [], 0
    while start < len(deliveries):
        size = draw(st.integers(1, len(deliveries) - start))
        chunks.append(deliveries[start:start + size])
        start += size
    return seeds, deliveries, chunks


def build(prefix: str, spec: dict) -> InventoryChange:
    return change(prefix + spec["sku"], prefix + spec["id"], spec["at"], spec.get("quantity"), spec.get("delta"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_batches_end_exactly_where_one_by_one_ends(db_session, scenario):
    # given the same seeded SKUs twice, under two prefixes
    seeds, deliveries, chunks = scenario
    run = uuid.uuid4().hex[:12]
    one, batched = f"one-{run}-", f"batch-{run}-"
    for prefix in (one, batched):
        for seed in seeds:
            apply_inventory_change(build(prefix, seed), db_session)

    # when the deliveries are applied one by one under one prefix, and in chunks under the other
    expected = [apply_inventory_change(build(one, spec), db_session) for spec in deliveries]
    outcomes = [outcome for chunk in chunks
                for outcome in apply_inventory_batch([build(batched, spec) for spec in chunk], db_session)]

    # then outcomes, figures, history rows in order, and idempotency records are all the same
    assert outcomes == expected
    assert levels(db_session, batched) == levels(db_session, one)
    assert history(db_session, batched) == history(db_session, one)
    assert processed(db_session, batched) == processed(db_session, one)


def open_holds(session: Session, prefix: str) -> list[str]:
    return list(session.scalars(select(StockHold.sku).where(StockHold.sku.startswith(prefix),
                                                            StockHold.released_at.is_(None))))


def test_stock_holds_are_released_as_one_by_one_would(db_session):
    # given, twice, a figure as of T0+2m, then an order the ERP acknowledged at T0+1m holding stock
    # (taken after that figure arrived, so no figure newer than the order has been applied since)
    run = uuid.uuid4().hex[:12]
    one, batched = f"one-{run}-", f"batch-{run}-"
    for prefix in (one, batched):
        apply_inventory_change(change(f"{prefix}sku", f"{prefix}seed", T0 + timedelta(minutes=2), quantity=10),
                               db_session)
        db_session.add(Order(order_id=f"{prefix}order", order_date=T0, customer_ref="C-1",
                             synced_at=T0 + timedelta(minutes=1), erp_received_at=T0 + timedelta(minutes=1)))
        db_session.add(StockHold(order_id=f"{prefix}order", sku=f"{prefix}sku", quantity=1))
        db_session.flush()

    # when two sales arrive as deltas, one by one for one SKU and as a batch for the other
    def sales(prefix: str) -> list[InventoryChange]:
        return [change(f"{prefix}sku", f"{prefix}sale-{n}", T0 + timedelta(minutes=3), delta=-1) for n in range(2)]

    for event in sales(one):
        apply_inventory_change(event, db_session)
    apply_inventory_batch(sales(batched), db_session)

    # then the holds are still open in both: a delta is no new figure
    assert open_holds(db_session, one) == [f"{one}sku"]
    assert open_holds(db_session, batched) == [f"{batched}sku"]


@pytest.fixture
def committed_sku(db_engine):
    sku = f"RACE-{uuid.uuid4().hex}"
    yield sku
    with Session(db_engine) as session, session.begin():
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_id.startswith(sku)))
        session.execute(delete(StockChange).where(StockChange.sku == sku))
        session.execute(delete(StockLevel).where(StockLevel.sku == sku))


WAITING_HERE = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def test_a_batch_waits_for_a_sku_created_by_a_concurrent_transaction_and_builds_on_its_figure(
    db_engine, committed_sku
):
    # given another transaction that has created the SKU's row with a delta but not committed yet
    other = Session(db_engine)
    apply_inventory_change(change(committed_sku, f"{committed_sku}-first", T0, delta=5), other)
    failures: list[BaseException] = []

    def apply_batch() -> None:
        with Session(db_engine) as session:
            try:
                apply_inventory_batch([change(committed_sku, f"{committed_sku}-{n}", T0, delta=-1) for n in range(2)],
                                      session)
                session.commit()
            except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
                failures.append(exc)

    # when a batch of two sales of it starts, and the other transaction commits while it waits
    batch = threading.Thread(target=apply_batch)
    batch.start()
    with db_engine.connect() as watcher:
        deadline = time.monotonic() + 10
        while not watcher.scalar(WAITING_HERE):
            assert time.monotonic() < deadline, f"the batch never waited for the other transaction: {failures}"
            watcher.rollback()  # pg_stat_activity is read once per transaction
            time.sleep(0.02)
    other.commit()
    other.close()
    batch.join(timeout=10)

    # then the batch neither failed nor overwrote that figure: its sales count on top of it
    assert failures == []
    with Session(db_engine) as session:
        assert levels(session, committed_sku) == {"": (3, NO_TOTAL_YET)}
