"""The catalog worker's whole-batch handler ends where its events applied one at a time end."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.models import Media, ProductGroup, StockLevel, Variant
from erp_sync.shared.receipt_stamp import receipt_headers
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, Park
from tests.support.factories import catalog_event, encode, now_iso, variant_with


def _body(group: str, skus: list[str], *, at: timedelta = timedelta(), stock: int = 5) -> bytes:
    document = catalog_event(product_group_id=group, variants=[
        variant_with(sku=sku, stock_quantity=stock,
                     media=[{"url": f"https://erp-cdn.com/u/{sku}.jpg", "is_main": True}]) for sku in skus
    ])
    document["timestamp"] = now_iso(at)
    return encode(document)


def _delivery(tag: int, body: bytes, *, redelivered: bool = False, headers: dict | None = None) -> Delivery:
    return Delivery(tag, body, f"msg-{tag}", "application/json", headers or {}, redelivered=redelivered)


def test_a_batch_ends_as_its_events_one_by_one(catalog_runner, caplog):
    runner, sessions = catalog_runner
    caplog.set_level(logging.INFO, logger="erp_sync.shared")
    first = _body("PG-B1", ["B1-A", "B1-B"], at=timedelta(minutes=-2), stock=7)
    bodies = [
        first,
        _body("PG-B2", ["B2-A"], stock=3),
        _body("PG-B1", ["B1-A"], at=timedelta(minutes=-1), stock=9),  # newer: B1-B leaves the group
        _body("PG-B1", ["B1-A", "B1-B"], at=timedelta(minutes=-3), stock=1),  # older: stale, its stock too
        first,  # a redelivery in the same batch: a duplicate
        first,  # the ERP's copy of the first webhook: a duplicate too
    ]

    # when the six arrive as one batch, the fifth redelivered by the broker
    outcomes = runner.run([_delivery(tag, body, redelivered=tag == 5) for tag, body in enumerate(bodies, start=1)])

    # then each has the outcome it has alone, in one pass of the batch handler
    assert [outcome.outcome for outcome in outcomes if isinstance(outcome, Done)] == [
        "applied", "applied", "applied", "stale", "duplicate", "duplicate"]
    assert "handling them one by one" not in caplog.text
    # and the newest of each group won, each image has one row, stock included, B1-B deactivated, not deleted
    with sessions() as session:
        assert session.scalars(select(ProductGroup.product_group_id).order_by(ProductGroup.product_group_id)).all() \
            == ["PG-B1", "PG-B2"]
        active = dict(session.execute(select(Variant.sku, Variant.is_active).where(Variant.sku.like("B%"))).all())
        assert active == {"B1-A": True, "B1-B": False, "B2-A": True}
        levels = dict(session.execute(select(StockLevel.sku, StockLevel.erp_quantity)
                                      .where(StockLevel.sku.like("B%"))).all())
        assert levels == {"B1-A": 9, "B1-B": 7, "B2-A": 3}
        assert session.scalars(select(Media.sku).where(Media.sku.like("B%")).order_by(Media.sku)).all() \
            == ["B1-A", "B1-B", "B2-A"]
    def asked(outcome):
        return sorted(image["sku"] for message in outcome.follow_ups for image in json.loads(message.body)["images"])

    # and the first event and its redelivery ask for the same pending images (the first handling's
    # requests may have been lost with its connection); the ERP's copy asks for none again
    assert asked(outcomes[0]) == asked(outcomes[4]) == ["B1-A", "B1-B"]
    assert asked(outcomes[5]) == []


def test_a_duplicate_back_from_the_retry_path_asks_again_for_its_pending_images(catalog_runner):
    # given a group applied, its images still pending
    runner, _ = catalog_runner
    body = _body("PG-R1", ["R1-A"])
    runner.run([_delivery(1, body)])

    # when the same message comes back from the retry path (its attempt header), and the ERP sends a copy
    again = Delivery(2, body, "msg-2", "application/json", headers={ATTEMPT_HEADER: 2})
    outcomes = runner.run([again, _delivery(3, body)])

    # then the message that came round asks again, the ERP's copy does not
    assert [[image["sku"] for message in outcome.follow_ups for image in json.loads(message.body)["images"]]
            for outcome in outcomes] == [["R1-A"], []]


def test_a_malformed_message_in_a_batch_is_parked_and_the_others_applied(catalog_runner):
    runner, sessions = catalog_runner
    bodies = [_body("PG-C1", ["C1-A"]), b'{"event_type": "catalog.update", "event_id": "evt_bad"}',
              _body("PG-C2", ["C2-A"])]

    outcomes = runner.run([_delivery(tag, body) for tag, body in enumerate(bodies, start=1)])

    assert [outcome.outcome if isinstance(outcome, Done) else type(outcome) for outcome in outcomes] == [
        "applied", Park, "applied"]
    with sessions() as session:
        assert session.scalars(select(Variant.sku).where(Variant.sku.like("C%")).order_by(Variant.sku)).all() \
            == ["C1-A", "C2-A"]


def test_skus_moving_between_groups_within_a_batch_end_as_one_by_one(catalog_runner, caplog):
    runner, sessions = catalog_runner
    caplog.set_level(logging.INFO, logger="erp_sync.workers.catalog")
    bodies = [
        _body("PG-M1", ["M-A", "M-B", "M-C"], at=timedelta(minutes=-4), stock=1),
        _body("PG-M2", ["M-D"], at=timedelta(minutes=-4), stock=2),
        _body("PG-M2", ["M-B", "M-D"], at=timedelta(minutes=-3), stock=3),  # M-B moves to PG-M2
        _body("PG-M1", ["M-A", "M-B"], at=timedelta(minutes=-5), stock=4),  # older than both: stale
        _body("PG-M1", ["M-A", "M-C"], at=timedelta(minutes=-2), stock=5),  # M-B stays in PG-M2
        _body("PG-M3", ["M-E"], stock=6),  # shares nothing with the others
    ]

    # when the six arrive as one batch
    outcomes = runner.run([_delivery(tag, body) for tag, body in enumerate(bodies, start=1)])

    # then each has the outcome it has alone, in one pass of the batch handler
    assert [outcome.outcome for outcome in outcomes if isinstance(outcome, Done)] == [
        "applied", "applied", "applied", "stale", "applied", "applied"]
    assert "handling them one by one" not in caplog.text
    # and every SKU is in the group of its newest update, active, with the newest figure
    with sessions() as session:
        rows = session.execute(select(Variant.sku, Variant.product_group_id, Variant.is_active)
                               .where(Variant.sku.like("M-%")).order_by(Variant.sku)).all()
        assert [tuple(row) for row in rows] == [
            ("M-A", "PG-M1", True), ("M-B", "PG-M2", True), ("M-C", "PG-M1", True), ("M-D", "PG-M2", True),
            ("M-E", "PG-M3", True)]
        levels = dict(session.execute(select(StockLevel.sku, StockLevel.erp_quantity)
                                      .where(StockLevel.sku.like("M-%"))).all())
        assert levels == {"M-A": 5, "M-B": 3, "M-C": 5, "M-D": 3, "M-E": 6}
        assert session.scalars(select(Media.sku).where(Media.sku.like("M-%")).order_by(Media.sku)).all() \
            == ["M-A", "M-B", "M-C", "M-D", "M-E"]
    # and the move is logged once, by the event that made it
    assert caplog.text.count("moved sku M-B from group PG-M1 to group PG-M2") == 1


def _repricing(group: str, skus: list[str], price: float, stock: int, second: str) -> bytes:
    document = catalog_event(product_group_id=group, variants=[
        variant_with(sku=sku, price=price, stock_quantity=stock,
                     media=[{"url": f"https://erp-cdn.com/u/{sku}.jpg", "is_main": True}]) for sku in skus])
    document["timestamp"] = second
    return encode(document)


@pytest.mark.parametrize("together", [True, False], ids=["in one batch", "in two batches"])
def test_of_two_updates_in_one_second_the_one_the_door_received_later_stands(catalog_runner, together):
    # given two repricings of one group in one second, 100.00 then 101.00, each stamped by the door on
    # receipt, taken the later first (in one batch, or by a worker committing before a slower one)
    runner, sessions = catalog_runner
    group, skus = f"PG-T{uuid.uuid4().hex[:8]}", [f"T{uuid.uuid4().hex[:8]}-{n}" for n in (1, 2)]
    second = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    now_us = int(datetime.now(UTC).timestamp() * 1_000_000)
    later = _delivery(1, _repricing(group, skus, 101.0, 8, second), headers=receipt_headers(now_us + 300_000))
    earlier = _delivery(2, _repricing(group, skus, 100.0, 9, second), headers=receipt_headers(now_us))

    # when both are applied
    outcomes = runner.run([later, earlier]) if together else runner.run([later]) + runner.run([earlier])

    # then the later-received one stands: its prices and its stock
    assert [outcome.outcome for outcome in outcomes if isinstance(outcome, Done)] == ["applied", "stale"]
    with sessions() as session:
        prices = session.execute(select(Variant.price).where(Variant.sku.in_(skus))).scalars().all()
        levels = session.execute(select(StockLevel.erp_quantity).where(StockLevel.sku.in_(skus))).scalars().all()
    assert [str(price) for price in prices] == ["101.00", "101.00"]
    assert levels == [8, 8]
