"""Accepted means applicable: every event the ingress accepts, and every order `publish_order` confirms, the workers can store.

Hypothesis writes events full of edge values (the longest names, NUL and control characters,
numbers at and past every bound, unicode); whatever `decode_event` accepts is applied by the real
catalog and inventory handlers against PostgreSQL, and none may fail: a failure there would park
an event the ERP was told (202) had been delivered.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp_sync.ingress.availability import stock_history
from erp_sync.shared.erp_events import CatalogUpdate, InventoryChange, decode_event
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.fields import MAX_QUANTITY
from erp_sync.shared.models import StockLevel, Variant
from erp_sync.shared.orders import OrderPlaced, decode_order
from erp_sync.workers.catalog import apply_catalog_update
from erp_sync.workers.inventory import apply_inventory_change
from erp_sync.workers.order_store import lock, record_orders
from tests.support.factories import catalog_event, inventory_event, variant_with

BOUNDS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), 10**9, 10**9 + 1, 10**15 - 1, 10**15, 2**63]


def texts(max_size: int) -> st.SearchStrategy[str]:
    edges = st.sampled_from(["", " ", "x" * 20, "x" * 50, "x" * 51, "x" * 100, "x" * 101, "x" * 255, "x" * 256,
                             "é" * 255, "名" * 100, "a\x00b", "a\nb", "\x7f", "\u2028"])
    return st.one_of(edges, st.text(max_size=max_size))


numbers = st.one_of(st.sampled_from(BOUNDS), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
values = st.one_of(texts(300), numbers, st.booleans(), st.none())
# Where in an event hostile values go: each path a field of the spec's examples.
CATALOG_PATHS = [("event_id",), ("data", "product_group_id"), ("data", "group_name"), ("data", "description"),
                 ("data", "tax_hsn"), ("data", "category_hierarchy", 0), ("data", "variants", 0, "sku"),
                 ("data", "variants", 0, "display_name"), ("data", "variants", 0, "stock_quantity"),
                 ("data", "variants", 1, "stock_quantity"), ("data", "variants", 0, "price")]
INVENTORY_PATHS = [("event_id",), ("data", "sku"), ("data", "new_quantity"), ("data", "location_id"),
                   ("data", "reason")]


def with_values(event: dict, changes: list[tuple[tuple, object]]) -> dict:
    for path, value in changes:
        place = event
        for step in path[:-1]:
            place = place[step]
        place[path[-1]] = value
    return event


@st.composite
def catalog_events(draw) -> dict:
    event = catalog_event()
    event["data"]["variants"][0]["attributes"] = draw(st.dictionaries(texts(20), values, max_size=3))
    changes = draw(st.lists(st.tuples(st.sampled_from(CATALOG_PATHS), values), max_size=3))
    return with_values(event, changes)


@st.composite
def inventory_events(draw) -> dict:
    event = inventory_event()
    if draw(st.booleans()):
        event["data"] = {"sku": event["data"]["sku"], "quantity_change": draw(numbers)}
    changes = draw(st.lists(st.tuples(st.sampled_from(INVENTORY_PATHS), values), max_size=2))
    return with_values(event, changes)


def accepted(document: dict) -> CatalogUpdate | InventoryChange:
    try:
        return decode_event(json.dumps(document).encode())
    except MessageDecodeError:
        assume(False)
        raise


def applied_in_a_rolled_back_transaction(db_engine, apply) -> None:
    with db_engine.connect() as connection, connection.begin() as transaction:
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        apply(session)
        session.flush()
        transaction.rollback()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                  HealthCheck.too_slow])
@given(catalog=catalog_events(), inventory=inventory_events())
def test_every_event_the_ingress_accepts_the_workers_can_apply(db_engine, catalog, inventory):
    catalog_update, inventory_change = accepted(catalog), accepted(inventory)
    assume(catalog_update.event_id != inventory_change.event_id)  # one id for two events is a conflict, parked

    def apply(session: Session) -> None:
        apply_catalog_update(catalog_update, session)
        apply_inventory_change(inventory_change, session)

    applied_in_a_rolled_back_transaction(db_engine, apply)


ORDER_PATHS = [("order_id",), ("customer_ref",), ("warehouse_id",), ("line_items", 0, "sku"),
               ("line_items", 0, "quantity"), ("line_items", 0, "unit_price"), ("line_items", 1, "quantity"),
               ("order_date",)]
# Dates at the ends of what Python and PostgreSQL hold, in and out of UTC.
ORDER_DATES = st.sampled_from(["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "0001-01-02T00:00:00+14:00",
                               "0001-01-02T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59-01:00",
                               "9999-12-30T00:00:00-12:00", "9999-12-30T00:00:00Z", "1969-12-31T23:59:59+23:59"])


@st.composite
def orders(draw) -> dict:
    order = {"order_id": "ORD-HYP-1", "order_date": "2026-12-04T10:15:00Z", "customer_ref": "CUST-555",
             "line_items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 10.5},
                            {"sku": "SKU-2", "quantity": 2, "unit_price": 0}]}
    changes = draw(st.lists(st.tuples(st.sampled_from(ORDER_PATHS), st.one_of(values, ORDER_DATES)), max_size=3))
    return with_values(order, changes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                  HealthCheck.too_slow])
@given(order=orders())
def test_every_order_publish_order_confirms_the_orders_worker_can_record(db_engine, order):
    try:
        placed = OrderPlaced.model_validate(order)  # what publish_order validates before it publishes
    except ValidationError:
        assume(False)
        raise

    def record_and_read_back(session: Session) -> None:
        record_orders(session, [placed])
        for zone in ("Etc/GMT+12", "Pacific/Kiritimati"):  # the database sessions furthest from UTC, -12 and +14 hours
            session.execute(text(f"SET LOCAL TIME ZONE '{zone}'"))
            read = lock(session, placed.order_id)  # as a push reads it, and the order views
            assert read is not None and read[1].same_order(placed)

    applied_in_a_rolled_back_transaction(db_engine, record_and_read_back)


@pytest.mark.parametrize("offset", ["+23:59", "-23:59", "+20:00", "-16:00"])
def test_an_event_dated_with_any_offset_iso_8601_allows_is_applied(db_engine, offset):
    # PostgreSQL refuses offsets beyond ±15:59: accepted at the door, such a timestamp must still be stored
    at = datetime.now(UTC).replace(microsecond=0)
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    zone = timezone((1 if offset[0] == "+" else -1) * timedelta(hours=hours, minutes=minutes))
    documents = [catalog_event(), inventory_event()]
    for document in documents:
        document["timestamp"] = at.astimezone(zone).isoformat()
    update, change = (decode_event(json.dumps(document).encode()) for document in documents)

    def apply(session: Session) -> None:
        apply_catalog_update(update, session)
        apply_inventory_change(change, session)

    applied_in_a_rolled_back_transaction(db_engine, apply)
    assert update.timestamp == change.timestamp == at


def test_a_zero_price_of_any_exponent_is_stored(db_engine):
    # PostgreSQL refuses the text of 0E-16384: accepted at the door, it must still reach the database
    event = catalog_event()
    event["data"]["variants"][0]["price"] = 123456789
    update = decode_event(json.dumps(event).encode().replace(b"123456789", b"0e-999999999", 1))
    order = {"order_id": "ORD-ZERO", "order_date": "2026-12-04T10:15:00Z",
             "line_items": [{"sku": "SKU-1", "quantity": 1, "unit_price": 123456789}]}
    placed = decode_order(json.dumps(order).encode().replace(b"123456789", b"0e-999999999", 1))

    def apply(session: Session) -> None:
        apply_catalog_update(update, session)
        record_orders(session, [placed])

    applied_in_a_rolled_back_transaction(db_engine, apply)


def test_figures_that_add_up_past_32_bits_are_stored_and_shown(db_engine):
    # Each quantity is bounded at the door, the figure they add up to is not: every one is applicable
    sku = "SKU-PAST-32-BITS"
    stamp = datetime.now(UTC)
    update = catalog_event(variants=[variant_with(sku=sku, stock_quantity=MAX_QUANTITY)])
    update["timestamp"] = stamp.isoformat()
    receipts = []
    for minutes in (1, 2, 3):
        receipt = inventory_event(sku=sku, quantity_change=MAX_QUANTITY)
        del receipt["data"]["new_quantity"]
        receipt["timestamp"] = (stamp + timedelta(minutes=minutes)).isoformat()
        receipts.append(receipt)

    def apply(session: Session) -> None:
        # the receipts first, then the catalog's older total, which adds back every receipt since
        for receipt in receipts:
            apply_inventory_change(decode_event(json.dumps(receipt).encode()), session)
        assert session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku)) == 3 * MAX_QUANTITY
        apply_catalog_update(decode_event(json.dumps(update).encode()), session)

        assert session.scalar(select(StockLevel.erp_quantity).where(StockLevel.sku == sku)) == 4 * MAX_QUANTITY
        assert session.scalar(select(Variant.sku).where(Variant.sku == sku)) == sku
        assert stock_history(session, sku).changes[0].resulting_quantity == 4 * MAX_QUANTITY

    applied_in_a_rolled_back_transaction(db_engine, apply)
