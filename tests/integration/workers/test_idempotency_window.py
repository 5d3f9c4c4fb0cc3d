"""The idempotency window against real PostgreSQL: events dated before it are parked, records past it pruned."""
from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.models import ProcessedEvent, ProductGroup, StockChange, StockLevel
from erp_sync.shared.dead_letters import DeadLetters
from erp_sync.shared.retry_policy import PARK_REASON_HEADER, Park
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.idempotency_window import prune_processed_events
from erp_sync.workers.reconcile_schedule import run_reconcile_worker
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import run_worker
from tests.support.amqp import Landed, drain
from tests.support.factories import catalog_event, encode, inventory_event, now_iso, variant_with
from tests.support.parking import park
from tests.support.waiting import wait_for

WINDOW = timedelta(days=30)  # IDEMPOTENCY_WINDOW_S's default
PAST_THE_WINDOW = -(WINDOW + timedelta(hours=1))


def delivery(tag: int, body: bytes) -> Delivery:
    return Delivery(delivery_tag=tag, body=body, message_id=f"msg-{tag}", content_type="application/json")


def inventory(sku: str, dated: timedelta = timedelta(), **data: object) -> bytes:
    document = inventory_event(sku=sku, **data)
    document["event_id"], document["timestamp"] = f"evt-{uuid.uuid4().hex}", now_iso(dated)
    return encode(document)


def stock_of(session: Session, sku: str) -> int | None:
    return session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku))


def test_an_inventory_event_dated_before_the_window_is_parked_and_the_others_applied(runner):
    # given a batch: a figure, a difference dated before the idempotency window (a replay a month
    # late, say, whose record may be gone), and another difference
    batch_runner, sessions = runner
    sku = f"WIN-{uuid.uuid4().hex[:8]}"
    bodies = [inventory(sku, new_quantity=10, quantity_change=None),
              inventory(sku, PAST_THE_WINDOW, new_quantity=None, quantity_change=5),
              inventory(sku, new_quantity=None, quantity_change=-2)]

    # when the inventory worker runs it
    outcomes = batch_runner.run([delivery(tag, body) for tag, body in enumerate(bodies, start=1)])

    # then the old one is parked, naming the setting, and changes nothing; the others apply
    assert [type(outcome) for outcome in outcomes] == [Done, Park, Done]
    assert "EventTooOld" in outcomes[1].reason and "IDEMPOTENCY_WINDOW_S" in outcomes[1].reason
    with sessions() as session:
        assert stock_of(session, sku) == 8
        assert session.scalar(select(func.count()).select_from(StockChange).where(StockChange.sku == sku)) == 2
        assert session.get(ProcessedEvent, json.loads(bodies[1])["event_id"]) is None


def test_an_event_just_inside_the_window_is_applied(runner):
    # given a difference dated a minute inside the window
    batch_runner, sessions = runner
    sku = f"EDGE-{uuid.uuid4().hex[:8]}"
    body = inventory(sku, -(WINDOW - timedelta(minutes=1)), new_quantity=None, quantity_change=4)

    # when the inventory worker runs it, then it applies
    assert batch_runner.run([delivery(1, body)]) == [Done(outcome="applied")]
    with sessions() as session:
        assert stock_of(session, sku) == 4


def test_a_catalog_update_dated_before_the_window_is_parked(catalog_runner):
    # given a catalog update dated before the window, beside a current one
    batch_runner, sessions = catalog_runner
    old_group, new_group = f"OLD-{uuid.uuid4().hex[:8]}", f"NEW-{uuid.uuid4().hex[:8]}"
    documents = [catalog_event(product_group_id=old_group, variants=[variant_with(sku=f"{old_group}-1")]),
                 catalog_event(product_group_id=new_group, variants=[variant_with(sku=f"{new_group}-1")])]
    documents[0]["timestamp"] = now_iso(PAST_THE_WINDOW)

    # when the catalog worker runs them
    outcomes = batch_runner.run([delivery(tag, encode(document)) for tag, document in enumerate(documents, start=1)])

    # then the old one is parked and creates nothing; the current one applies
    assert [type(outcome) for outcome in outcomes] == [Park, Done]
    assert "EventTooOld" in outcomes[0].reason and documents[0]["event_id"] in outcomes[0].reason
    with sessions() as session:
        assert session.get(ProductGroup, old_group) is None
        assert session.get(ProductGroup, new_group) is not None


def record(session: Session, dated_ago: timedelta | None, written_ago: timedelta = timedelta(0)) -> str:
    """A record of an event dated `dated_ago` (None: undated, as before migration 0020), written `written_ago`."""
    now = datetime.now(UTC)
    event_id = f"evt-{uuid.uuid4().hex}"
    session.execute(insert(ProcessedEvent).values(
        event_id=event_id, event_type="inventory.change", processed_at=now - written_ago,
        dated=None if dated_ago is None else now - dated_ago))
    return event_id


def kept_ids(session: Session) -> set[str]:
    return set(session.scalars(select(ProcessedEvent.event_id)))


@pytest.mark.parametrize("offset", ["Z", "+05:30", "-23:59"])
def test_a_record_keeps_its_event_date(runner, offset):
    # given an inventory event dated an hour ago, in a time zone of the ERP's
    batch_runner, sessions = runner
    event = json.loads(inventory(f"DATE-{uuid.uuid4().hex[:8]}", new_quantity=3, quantity_change=None))
    hours, _, minutes = offset.lstrip("+-").partition(":")
    zone = UTC if offset == "Z" else timezone(int(offset[0] + "1") * timedelta(hours=int(hours), minutes=int(minutes)))
    event["timestamp"] = (datetime.now(UTC) - timedelta(hours=1)).astimezone(zone).isoformat()
    body = encode(event)

    # when it is applied, then its record holds its ERP timestamp, by which it is pruned
    assert batch_runner.run([delivery(1, body)]) == [Done(outcome="applied")]
    with sessions() as session:
        dated = session.scalar(select(ProcessedEvent.dated).where(ProcessedEvent.event_id == event["event_id"]))
    assert dated == datetime.fromisoformat(event["timestamp"])


def test_pruning_deletes_the_records_past_the_window_batch_by_batch(settings, committed_session):
    # given records of events dated before the window and a day (the hosts' clocks), however
    # recently written, and records without a date (before 0020) written before the window, the
    # door's future skew (5 minutes) and a day
    old = [record(committed_session, WINDOW + timedelta(days=1, minutes=1)) for _ in range(5)]
    old += [record(committed_session, WINDOW + timedelta(days=400)) for _ in range(2)]
    old += [record(committed_session, None, WINDOW + timedelta(days=1, minutes=6)) for _ in range(4)]
    # and records of events still within that, however long ago written
    young = [record(committed_session, dated_ago, written_ago) for dated_ago, written_ago in (
        (timedelta(0), timedelta(0)), (WINDOW, timedelta(0)), (WINDOW + timedelta(hours=23), WINDOW * 3),
        (None, timedelta(days=29)), (None, WINDOW + timedelta(days=1)))]
    committed_session.commit()

    # when they are pruned three at a time
    pruned = prune_processed_events(settings, batch_rows=3)

    # then every old one went, and the young ones stay
    assert pruned == len(old)
    assert kept_ids(committed_session) == set(young)


class StoppedAfterChecks(threading.Event):
    """A worker's stop that is set once it has been looked at `checks` times."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    def is_set(self) -> bool:
        self.checks -= 1
        return self.checks < 0


def test_pruning_stops_between_batches_when_the_worker_stops(settings, committed_session):
    # given old records, dated and not
    for dated_ago in (WINDOW * 2, WINDOW * 2, WINDOW * 2, None, None):
        record(committed_session, dated_ago, WINDOW * 2)
    committed_session.commit()

    # when the worker stops after the first batch of two
    pruned = prune_processed_events(settings, StoppedAfterChecks(1), batch_rows=2)

    # then the rest is left for the next run
    assert pruned == 2
    assert len(kept_ids(committed_session)) == 3


def just_before_the_next_minute() -> Callable[[], datetime]:
    """A clock that reads half a second before a minute's turn when first read, and runs on from there."""
    offset: timedelta | None = None

    def clock() -> datetime:
        nonlocal offset
        real = datetime.now(UTC)
        if offset is None:
            offset = real.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=-0.5) - real
        return real + offset

    return clock


def changes_to_fold(session) -> int:
    return int(session.execute(text("SELECT count(*) FROM row_count_changes")).scalar_one())


def received_kept(session) -> int | None:
    return session.execute(text("SELECT n FROM row_counts WHERE counted = 'orders' AND key = 'received'")
                           ).scalar_one_or_none()


def test_the_reconcile_worker_prunes_and_keeps_the_counts_after_its_slot_sweep(erp, sweep_settings,
                                                                              committed_session, caplog):
    # given old and recent records, an order's count yet to fold, and a reconcile worker whose slot
    # comes half a second after it starts
    old = record(committed_session, WINDOW * 2)
    young = record(committed_session, timedelta(hours=1))
    committed_session.execute(text("INSERT INTO orders (order_id, order_date, customer_ref) "
                                   "VALUES ('ORD-FOLD-1', now(), 'CUST-1')"))
    committed_session.commit()
    assert changes_to_fold(committed_session) == 1
    # and one loaded with the counting triggers off, as a data-only restore does
    committed_session.execute(text("SET LOCAL session_replication_role = replica"))
    committed_session.execute(text("INSERT INTO orders (order_id, order_date, customer_ref) "
                                   "VALUES ('ORD-FOLD-2', now(), 'CUST-1')"))
    committed_session.commit()
    settings = sweep_settings(erp({"P-1": 1}), reconcile_schedule="* * * * *")
    stop = threading.Event()
    worker = threading.Thread(target=run_reconcile_worker, args=(settings, stop),
                              kwargs={"clock": just_before_the_next_minute()})

    # when the slot's sweep has run
    caplog.set_level(logging.INFO)
    worker.start()
    try:
        wait_for(lambda: old not in kept_ids(committed_session) and received_kept(committed_session) == 2, timeout=30)
    finally:
        stop.set()
        worker.join(10)

    # then the old record is gone and the recent one kept, once the sweep was done, and the order is counted
    assert kept_ids(committed_session) == {young}
    said = [r.getMessage() for r in caplog.records]
    swept = next(n for n, line in enumerate(said) if line.startswith("reconciliation for slot") and ": run " in line)
    assert said[swept + 1:][:3] == [
        "pruned 1 idempotency records past IDEMPOTENCY_WINDOW_S", "folded 1 changes into the row counts",
        "the kept counts of orders were {'received': 1}, its rows {'received': 2} (a load with the triggers off?): "
        "counting again"]
    assert not changes_to_fold(committed_session)


# Through RabbitMQ and the real inventory worker: what an operator sees replaying a month-old message.


@pytest.fixture
def inventory_worker(settings, broker, committed_session):
    """The inventory worker consuming in a thread of this process, as in production.

    After `committed_session`, so that what it wrote is emptied once it has stopped."""
    stop = threading.Event()
    worker = WORKERS["inventory"]
    assert isinstance(worker, ConsumingWorker)
    thread = threading.Thread(target=run_worker, args=(worker, settings, stop), name="test-inventory")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def test_a_parked_difference_replayed_after_the_window_is_parked_again_saying_why(
        inventory_worker, broker, committed_session):
    # given a difference parked a month and more ago (its record, had a copy been applied, may be gone)
    sku, event_id = f"LATE-{uuid.uuid4().hex[:8]}", f"evt-{uuid.uuid4().hex}"
    late = json.loads(inventory(sku, PAST_THE_WINDOW, new_quantity=None, quantity_change=5))
    late["event_id"] = event_id
    park(broker, "inventory", event_id, reason="DatabaseUnavailable: gave up after 5 attempts", body=encode(late))

    # when the operator replays it to the running inventory worker
    [replayed] = DeadLetters(broker).replay({event_id}, "inventory")

    # then it comes back parked, its reason naming the window, and the stock is untouched
    assert replayed.message_id == event_id
    found: list[Landed] = []
    wait_for(lambda: found.extend(drain(broker, WORK_QUEUES["inventory"].parking_queue)) or found, timeout=30)
    [landed] = found
    assert landed.properties.message_id == event_id
    reason = str(landed.properties.headers[PARK_REASON_HEADER])
    assert reason.startswith("EventTooOld: ") and "IDEMPOTENCY_WINDOW_S" in reason
    assert stock_of(committed_session, sku) is None
    assert committed_session.get(ProcessedEvent, event_id) is None
