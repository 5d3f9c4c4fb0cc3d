"""A reused event id against real PostgreSQL and RabbitMQ: a redelivery is a duplicate, another body is parked.

Through the ERP's door and the real workers: events are posted signed to the ingress app, which
publishes them, and the inventory and catalog workers consume them as in production.
"""
from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.ingress import create_app
from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.errors import EventIdConflict
from erp_sync.shared.models import ProcessedEvent, ProductGroup, StockChange, StockLevel
from erp_sync.shared.retry_policy import PARK_REASON_HEADER, Park
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.catalog import apply_catalog_update, decode_catalog_update
from erp_sync.workers.idempotency import body_digest
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import run_worker
from tests.support.amqp import Landed, drain
from tests.support.factories import (
    catalog_event,
    encode,
    inventory_event,
    now_iso,
    signed_headers,
    variant_with,
)
from tests.support.settings import WEBHOOK_SECRET
from tests.support.storefront import closed_after
from tests.support.waiting import wait_for

CONFLICTS = "erp_sync_event_id_conflicts_total"


def conflicts(event_type: str) -> float:
    return REGISTRY.get_sample_value(CONFLICTS, {"event_type": event_type}) or 0.0


def inventory(sku: str, event_id: str, **data: object) -> bytes:
    document = inventory_event(sku=sku, **data)
    document["event_id"] = event_id
    return encode(document)


@pytest.fixture
def door(settings, broker, committed_session):
    """The ingress app and the inventory and catalog workers, consuming in threads of this process.

    After `committed_session`, so that what they wrote is emptied once they have stopped."""
    stop = threading.Event()
    threads = []
    for name in ("inventory", "catalog"):
        worker = WORKERS[name]
        assert isinstance(worker, ConsumingWorker)
        thread = threading.Thread(target=run_worker, args=(worker, settings, stop), name=f"test-{name}")
        thread.start()
        threads.append(thread)
    try:
        for app in closed_after(create_app(settings)):
            yield app.test_client()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


@pytest.fixture
def sessions(db_engine) -> sessionmaker[Session]:
    return sessionmaker(bind=db_engine)


def post(client, body: bytes) -> None:
    answer = client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET))
    assert answer.status_code == 202, answer.get_json()


def quantity(sessions: sessionmaker[Session], sku: str) -> int | None:
    with sessions() as session:
        return session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku))


def parked(amqp_url: str, worker: str, seen: list[Landed], count: int) -> list[Landed]:
    """Wait until `count` messages were parked by `worker`; `seen` gathers what drained so far."""
    wait_for(lambda: seen.extend(drain(amqp_url, WORK_QUEUES[worker].parking_queue)) or len(seen) >= count)
    return seen


def test_the_same_id_with_the_same_body_stays_a_harmless_duplicate(door, sessions, amqp_url, caplog):
    # given an inventory event applied
    sku, event_id = f"DUP-{uuid.uuid4().hex[:8]}", f"evt-{uuid.uuid4().hex}"
    body = inventory(sku, event_id, new_quantity=7, quantity_change=None)
    post(door, body)
    wait_for(lambda: quantity(sessions, sku) == 7)
    before = conflicts("inventory.change")

    # when the ERP retries it, the same bytes, and then sends a change of another SKU
    post(door, body)
    marker = f"MARK-{uuid.uuid4().hex[:8]}"
    post(door, inventory(marker, f"evt-{uuid.uuid4().hex}", new_quantity=1, quantity_change=None))
    wait_for(lambda: quantity(sessions, marker) == 1)

    # then the retry is recorded as a duplicate: nothing parked, no alert, nothing counted
    with sessions() as session:
        outcomes = session.scalars(select(StockChange.outcome).where(StockChange.sku == sku).order_by(StockChange.id))
        assert list(outcomes) == ["applied", "duplicate"]
        digest = session.scalar(select(ProcessedEvent.body_digest).where(ProcessedEvent.event_id == event_id))
    assert digest == body_digest(body)
    assert quantity(sessions, sku) == 7
    assert drain(amqp_url, WORK_QUEUES["inventory"].parking_queue) == []
    assert conflicts("inventory.change") == before
    assert not [r for r in caplog.records if "ALERT" in r.getMessage()]


def test_the_same_id_with_another_body_is_parked_alerted_and_counted(door, sessions, amqp_url, caplog):
    # given an inventory event applied: 7 of the SKU
    sku, event_id = f"REUSE-{uuid.uuid4().hex[:8]}", f"evt-{uuid.uuid4().hex}"
    post(door, inventory(sku, event_id, new_quantity=7, quantity_change=None))
    wait_for(lambda: quantity(sessions, sku) == 7)
    before = conflicts("inventory.change")

    # when the ERP sends another event under the same id (a figure of 9, later)
    reused = inventory(sku, event_id, new_quantity=9, quantity_change=None)
    post(door, reused)

    # then it is parked with its reason, and not silently dropped
    [landed] = parked(amqp_url, "inventory", [], 1)
    assert landed.body == reused
    reason = str(landed.properties.headers[PARK_REASON_HEADER])
    assert "EventIdConflict" in reason and event_id in reason
    # one ALERT of each cause names the id (the conflict, then the park), and the counter went up by one for its type
    alerts = [r for r in caplog.records if r.getMessage().startswith("ALERT") and event_id in r.getMessage()]
    assert [r.alert_cause for r in alerts] == ["event_id_conflict", "message_parked"]
    assert all(r.levelno == logging.ERROR for r in alerts)
    assert conflicts("inventory.change") == before + 1
    # and the first event's effect is intact
    assert quantity(sessions, sku) == 7
    with sessions() as session:
        assert list(session.scalars(select(StockChange.outcome).where(StockChange.sku == sku))) == ["applied"]


def test_an_inventory_event_id_reused_by_a_catalog_event_is_a_conflict(door, sessions, amqp_url, caplog):
    # given an inventory event applied
    sku, event_id = f"CROSS-{uuid.uuid4().hex[:8]}", f"evt-{uuid.uuid4().hex}"
    post(door, inventory(sku, event_id, new_quantity=3, quantity_change=None))
    wait_for(lambda: quantity(sessions, sku) == 3)
    before = conflicts("catalog.update")

    # when a catalog update arrives under the same id
    group = f"GRP-{uuid.uuid4().hex[:8]}"
    document = catalog_event(product_group_id=group, variants=[variant_with(sku=sku, stock_quantity=40)])
    document["event_id"], document["timestamp"] = event_id, now_iso(timedelta(seconds=1))
    post(door, encode(document))

    # then the catalog worker parks it: no group, the stock figure untouched, an alert and a count
    [landed] = parked(amqp_url, "catalog", [], 1)
    assert "EventIdConflict" in str(landed.properties.headers[PARK_REASON_HEADER])
    assert conflicts("catalog.update") == before + 1
    assert any(r.getMessage().startswith("ALERT") and event_id in r.getMessage() for r in caplog.records)
    with sessions() as session:
        assert session.get(ProductGroup, group) is None
    assert quantity(sessions, sku) == 3


# The same batch, deterministically: the consumer's BatchRunner with the real inventory handlers.


def delivery(tag: int, body: bytes) -> Delivery:
    return Delivery(delivery_tag=tag, body=body, message_id=f"msg-{tag}", content_type="application/json")


def test_in_one_batch_the_first_body_of_an_id_applies_and_only_the_other_is_parked(runner):
    # given a batch: an event, a redelivery of it, the same id with another body, and two other events
    batch_runner, sessions = runner
    sku, other = f"BAT-{uuid.uuid4().hex[:8]}", f"OTH-{uuid.uuid4().hex[:8]}"
    event_id = f"evt-{uuid.uuid4().hex}"
    first = inventory(sku, event_id, new_quantity=5, quantity_change=None)
    bodies = [
        first,
        inventory(other, f"evt-{uuid.uuid4().hex}", new_quantity=2, quantity_change=None),
        first,
        inventory(sku, event_id, new_quantity=None, quantity_change=-1),
        inventory(other, f"evt-{uuid.uuid4().hex}", new_quantity=None, quantity_change=3),
    ]

    # when the consumer runs it
    outcomes = batch_runner.run([delivery(tag, body) for tag, body in enumerate(bodies, start=1)])

    # then only the conflicting one is parked, with its reason; the others had their effect
    assert [type(outcome) for outcome in outcomes] == [Done, Done, Done, Park, Done]
    assert "EventIdConflict" in outcomes[3].reason and event_id in outcomes[3].reason
    assert quantity(sessions, sku) == 5
    assert quantity(sessions, other) == 5
    with sessions() as session:
        outcomes_of_sku = session.scalars(select(StockChange.outcome).where(StockChange.sku == sku)
                                          .order_by(StockChange.id))
        assert list(outcomes_of_sku) == ["applied", "duplicate"]


def test_a_record_of_an_earlier_release_without_a_digest_counts_as_the_same_body(runner):
    # given an id recorded before migration 0007: no digest
    batch_runner, sessions = runner
    sku, event_id = f"OLD-{uuid.uuid4().hex[:8]}", f"evt-{uuid.uuid4().hex}"
    with sessions() as session, session.begin():
        session.execute(insert(ProcessedEvent).values(event_id=event_id, event_type="inventory.change"))

    # when an inventory event arrives under it
    outcomes = batch_runner.run([delivery(1, inventory(sku, event_id, new_quantity=4, quantity_change=None))])

    # then it is a duplicate, as before the digest
    assert outcomes == [Done(outcome="duplicate")]
    with sessions() as session:
        assert list(session.scalars(select(StockChange.outcome).where(StockChange.sku == sku))) == ["duplicate"]


def test_a_record_of_an_earlier_release_still_tells_another_event_type(db_session):
    # given an inventory event's id recorded before migration 0007: no digest
    event_id = f"evt-{uuid.uuid4().hex}"
    db_session.execute(insert(ProcessedEvent).values(event_id=event_id, event_type="inventory.change"))
    document = catalog_event()
    document["event_id"] = event_id
    body = encode(document)

    # when a catalog update arrives under it, then it is a conflict
    with pytest.raises(EventIdConflict, match=event_id):
        apply_catalog_update(decode_catalog_update(body), db_session, body_digest(body))
