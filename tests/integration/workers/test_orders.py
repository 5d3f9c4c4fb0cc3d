"""The orders handler against real PostgreSQL and the sandbox ERP over HTTP, one delivery at a time."""
from __future__ import annotations

import json
import logging
import threading
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from sqlalchemy import select, text

from erp_sync.ingress.availability import stock_view
from erp_sync.shared.consumer import Delivery, Handled
from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.shared.erp_events import InventoryChange, decode_event_of
from erp_sync.shared.errors import MessageDecodeError
from erp_sync.shared.models import Order, StockHold
from erp_sync.shared.order_view import order_view
from erp_sync.shared import orders as orders_module
from erp_sync.shared.orders import decode_order
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.retry_policy import PARK_REASON_HEADER
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, PARKING_EXCHANGE, RETRY_EXCHANGE
from tests.support.canned_http import answering
from tests.support.factories import encode, inventory_event
from tests.support.orders import SKU, delivery, order_body, order_of_lines, push_body
from tests.support.sandbox import TOKEN, running_sandbox
from tests.support.waiting import wait_for
from erp_sync.workers.hold_rule import release_expired_holds
from erp_sync.workers.order_store import ERROR_CHARS, claim, lock, record_rejected, save
from erp_sync.workers.inventory import apply_inventory_change
from erp_sync.workers.erp_client import erp_client
from erp_sync.workers.order_probe import OrderProbe
from erp_sync.workers.order_sync import build_push_handler
from erp_sync.workers.orders import record_batch, record_order

@pytest.fixture
def sandbox(tmp_path):
    with running_sandbox(tmp_path) as running:
        yield running


@pytest.fixture
def make_handler(settings_factory, sandbox):
    def build(**overrides):
        values = {"erp_base_url": sandbox.url, "erp_api_token": TOKEN, "order_retry_interval_s": 1,
                  "order_retry_window_s": 3, "erp_quick_retries": 2, "erp_quick_retry_base_s": 0.01,
                  "erp_connect_timeout_s": 1, "erp_read_timeout_s": 2, **overrides}
        return record_then_push(build_push_handler(settings_factory(**values)))

    return build


def record_then_push(push):
    """The orders worker's two steps on one session: record the order (or park it), then push what it handed on."""

    def run(message: Delivery, session):
        recorded = record_order(message, session)
        [handed_on] = recorded.follow_ups if isinstance(recorded, Handled) else recorded
        if handed_on.exchange == PARKING_EXCHANGE:
            return [handed_on]
        return push(Delivery(message.delivery_tag, handed_on.body, handed_on.message_id, handed_on.content_type,
                             handed_on.headers), session)

    run.push = push  # a message straight from the push queue (a retry, a re-send)
    return run


def interval_passed(session, order_id: str = "ORD-1") -> None:
    """As if the order's retry interval had passed: its retry is due now."""
    session.execute(text("UPDATE orders SET next_attempt_at = clock_timestamp() - interval '1 second' "
                         "WHERE order_id = :id"), {"id": order_id})


def order_row(session, order_id: str = "ORD-1") -> Order:
    session.flush()
    session.expire_all()
    return session.get(Order, order_id)


def open_holds(session, order_id: str = "ORD-1") -> list[StockHold]:
    session.flush()
    return list(session.scalars(select(StockHold).where(StockHold.order_id == order_id,
                                                        StockHold.released_at.is_(None))))


def test_new_order_is_recorded_held_and_synced(make_handler, sandbox, db_session):
    # when a new order is handled
    follow_ups = make_handler()(delivery(order_body()), db_session)

    # then it is recorded, synced, its stock still held, and the ERP deducted it once
    row = order_row(db_session)
    assert follow_ups == [] and row.status == "synced" and row.attempts == 1 and row.synced_at is not None
    assert [(line.sku, line.quantity, str(line.unit_price)) for line in row.lines] == [(SKU, 2, "79900.00")]
    assert [(hold.sku, hold.quantity) for hold in open_holds(db_session)] == [(SKU, 2)]
    assert sandbox.stock(SKU) == 48 and [o["order_id"] for o in sandbox.orders()] == ["ORD-1"]


def test_recorded_order_reduces_available_at_once(make_handler, sandbox, db_session):
    # given the ERP's figure of 50
    db_session.execute(text("INSERT INTO stock_levels (sku, erp_quantity, erp_as_of) VALUES (:s, 50, :t)"),
                       {"s": SKU, "t": datetime.now(UTC) - timedelta(hours=1)})
    sandbox.fault("down")

    # when an order for 2 is handled (even with the ERP down)
    make_handler()(delivery(order_body()), db_session)

    # then 48 are available
    view = stock_view(db_session, SKU)
    assert (view.erp_quantity, view.reserved, view.available) == (50, 2, 48)


def test_adjust_mode_posts_a_deduction(make_handler, sandbox, db_session):
    make_handler(erp_order_mode="adjust", erp_warehouse_id="WH-EAST")(delivery(order_body()), db_session)

    assert order_row(db_session).status == "synced"
    [received] = sandbox.orders()
    assert received["kind"] == "adjust" and received["idempotency_key"] == "ORD-1"
    assert received["body"]["adjustments"] == [{"sku": SKU, "quantity_change": -2, "warehouse_id": "WH-EAST"}]
    assert sandbox.stock(SKU) == 48


def test_duplicate_message_changes_nothing(make_handler, sandbox, db_session):
    handle = make_handler()
    handle(delivery(order_body()), db_session)

    assert handle(delivery(order_body(), tag=2, redelivered=True), db_session) is None

    assert order_row(db_session).attempts == 1 and len(sandbox.orders()) == 1 and sandbox.stock(SKU) == 48


def test_the_same_order_again_in_another_spelling_is_a_duplicate(make_handler, sandbox, db_session):
    handle = make_handler()
    handle(delivery(order_body()), db_session)
    # the same instant in another zone, the same price without decimals, the customer padded
    again = json.loads(order_body())
    again |= {"order_date": "2024-01-20T15:45:00+05:30", "customer_ref": " CUST-555 "}
    again["line_items"][0]["unit_price"] = 79900

    assert handle(delivery(json.dumps(again).encode(), tag=2), db_session) is None

    assert len(sandbox.orders()) == 1 and sandbox.stock(SKU) == 48


@pytest.mark.parametrize("change", [
    {"line_items": [{"sku": SKU, "quantity": 5, "unit_price": 79900.00}]},
    {"line_items": [{"sku": SKU, "quantity": 2, "unit_price": 899.00}]},
    {"order_date": "2024-01-21T10:15:00Z"},
    {"customer_ref": "CUST-556"},
    {"warehouse_id": "WH-EAST"},
])
def test_another_order_under_a_recorded_id_is_parked_and_alerted(make_handler, sandbox, db_session, caplog, change):
    # given ORD-1 recorded and synced
    handle = make_handler()
    handle(delivery(order_body()), db_session)
    other = json.dumps(json.loads(order_body()) | change).encode()

    # when another order arrives under its id
    with caplog.at_level(logging.ERROR):
        [parked] = handle(delivery(other, tag=2), db_session)

    # then that one is parked with a reason saying so, the operator alerted, and ORD-1 left as it was
    assert (parked.exchange, parked.routing_key, parked.body, parked.message_id) == (
        PARKING_EXCHANGE, "orders", other, "ORD-1")
    assert "recorded already for a different order" in parked.headers[PARK_REASON_HEADER]
    # (both causes, as an event id's conflict raises: a mail filter on message_parked sees every parking)
    assert [r.alert_cause for r in caplog.records if hasattr(r, "alert_cause")] == ["order_id_conflict", "message_parked"]
    row = order_row(db_session)
    assert row.status == "synced" and [(line.quantity, str(line.unit_price)) for line in row.lines] == [(2, "79900.00")]
    assert len(sandbox.orders()) == 1 and sandbox.stock(SKU) == 48


def test_the_storefront_sees_that_another_order_under_its_id_was_parked(make_handler, sandbox, db_session):
    # given ORD-1 recorded and synced: the storefront reading it saw the recorded order alone, as if
    # the other one it had placed under that id had been taken
    handle = make_handler()
    handle(delivery(order_body()), db_session)
    assert order_view(db_session, "ORD-1")["conflict_parked_at"] is None

    # when another order arrives under its id, and then the same order again
    handle(delivery(order_body(quantity=5), tag=2), db_session)
    parked_at = order_view(db_session, "ORD-1")["conflict_parked_at"]
    handle(delivery(order_body(), tag=3), db_session)

    # then the order's view says when the other was parked, and a duplicate of its own changes nothing
    assert parked_at is not None and datetime.fromisoformat(parked_at) > datetime.now(UTC) - timedelta(minutes=5)
    assert order_view(db_session, "ORD-1")["conflict_parked_at"] == parked_at
    assert order_view(db_session, "ORD-1")["status"] == "synced"


def test_another_order_under_the_id_of_one_being_pushed_holds_up_no_recording(migrated_database_url, committed_session):
    # given ORD-1 recorded, its row locked by its push while the ERP answers (the recording
    # connection would wait a minute for a lock)
    engine = make_engine(migrated_database_url, lock_timeout_ms=60_000)
    with engine.begin() as recording:
        record_batch([delivery(order_body())], recording)
    pushing = engine.connect()
    pushing.execute(text("SELECT 1 FROM orders WHERE order_id = 'ORD-1' FOR UPDATE"))
    released = threading.Event()
    safety = threading.Timer(30, lambda: (released.set(), pushing.rollback()))
    safety.start()
    try:
        # when a batch holds another order under its id and a new order
        with engine.begin() as recording:
            results = record_batch([delivery(order_body(quantity=5), tag=2),
                                    delivery(order_body("ORD-2"), tag=3)], recording)
        # then both were settled while the push still held its order
        assert not released.is_set()
    finally:
        safety.cancel()
        pushing.rollback()
        pushing.close()
        engine.dispose()

    # the conflict parked and noted for the storefront, the new order recorded and held
    assert [r.outcome if isinstance(r, Handled) else "parked" for r in results] == ["parked", "applied"]
    assert order_view(committed_session, "ORD-1")["conflict_parked_at"] is not None
    assert [hold.quantity for hold in open_holds(committed_session, "ORD-2")] == [2]


def test_two_orders_under_one_id_in_a_batch_record_the_first_and_park_the_second(db_session):
    first, second = order_body(), order_body(quantity=7)

    results = record_batch([delivery(first), delivery(second, tag=2), delivery(first, tag=3)], db_session)

    assert [r.outcome if isinstance(r, Handled) else "parked" for r in results] == ["applied", "parked", "duplicate"]
    assert [line.quantity for line in order_row(db_session).lines] == [2]


def test_a_valid_order_under_the_id_of_a_malformed_one_is_parked(make_handler, sandbox, db_session):
    # given ORD-1 recorded as rejected: its first message was malformed
    make_handler()(delivery(order_body(quantity=0)), db_session)

    # then a valid order under its id is parked, not pushed: the storefront must place it anew
    [parked] = make_handler()(delivery(order_body(), tag=2), db_session)
    assert parked.exchange == PARKING_EXCHANGE and order_row(db_session).status == "rejected"
    assert sandbox.orders() == []


def test_order_the_erp_already_has_is_synced(make_handler, sandbox, db_session, settings_factory):
    # given the ERP took the order already (a worker killed after the ERP's answer, before the commit)
    client = erp_client(settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN))
    client.import_order(decode_order(order_body()))

    # when the order is handled
    make_handler()(delivery(order_body()), db_session)

    # then 409 counts as synced and the ERP still holds it once
    assert order_row(db_session).status == "synced"
    assert len(sandbox.orders()) == 1 and sandbox.stock(SKU) == 48


def test_refused_order_is_rejected_released_and_alerted(make_handler, sandbox, db_session, caplog):
    sandbox.fault("none", reject_skus=[SKU])

    with caplog.at_level(logging.ERROR):
        follow_ups = make_handler()(delivery(order_body()), db_session)

    row = order_row(db_session)
    assert follow_ups == [] and row.status == "rejected" and "400" in row.last_error and SKU in row.last_error
    assert open_holds(db_session) == []
    assert [h.release_reason for h in row.holds] == ["rejected"]
    assert any("ALERT" in r.message and "ORD-1" in r.message for r in caplog.records)


def test_a_refusal_in_utf16_is_recorded_and_the_stock_released(settings_factory, db_session):
    # given an ERP refusing the order with a UTF-16 body (NUL bytes, which PostgreSQL refuses in text)
    refusal = '{"error": "unknown sku"}'.encode("utf-16")
    with answering(422, refusal, {"Content-Type": "application/json; charset=utf-16"}) as url:
        handler = record_then_push(build_push_handler(settings_factory(erp_base_url=url, erp_api_token=TOKEN)))

        # when the order is pushed
        follow_ups = handler(delivery(order_body()), db_session)

    # then it is rejected with the ERP's answer, and its stock released
    row = order_row(db_session)
    assert follow_ups == [] and row.status == "rejected" and "422" in row.last_error and "\x00" not in row.last_error
    assert open_holds(db_session) == []


def test_a_maintenance_page_answered_200_keeps_the_order_waiting_and_its_stock_held(settings_factory, db_session):
    # given a maintenance page in front of the ERP, answering 200 to every call
    page = b"<!DOCTYPE html><html><body>Maintenance: back soon</body></html>"
    with answering(200, page, {"Content-Type": "text/html"}) as url:
        handler = record_then_push(build_push_handler(settings_factory(erp_base_url=url, erp_api_token=TOKEN)))

        # when the order is pushed
        follow_ups = handler(delivery(order_body()), db_session)

    # then it is not synced (the ERP never saw it): it waits for a retry, its stock still held
    row = order_row(db_session)
    assert row.status == "pending_sync" and "web page" in row.last_error and len(follow_ups) == 1
    assert [h.sku for h in open_holds(db_session)] == [SKU]


def test_a_409s_body_is_kept_in_the_log_of_the_order_it_synced(settings_factory, db_session, caplog):
    # given an ERP answering 409 with a reason of its own
    with answering(409, b'{"error": "insufficient stock for SKU-1"}', {"Content-Type": "application/json"}) as url:
        handler = record_then_push(build_push_handler(settings_factory(erp_base_url=url, erp_api_token=TOKEN)))

        # when the order is pushed
        with caplog.at_level(logging.INFO):
            handler(delivery(order_body()), db_session)

    # then it is synced as the contract says (409: the ERP has it), and the ERP's words are in its log line
    assert order_row(db_session).status == "synced"
    assert any("ORD-1 synced" in r.getMessage() and "insufficient stock for SKU-1" in r.getMessage()
               for r in caplog.records)


def test_an_erp_date_no_clock_shows_leaves_the_order_readable(settings_factory, db_session):
    # given an ERP answering with a Date in year 9999
    with answering(201, b"{}", {"Date": "Fri, 31 Dec 9999 23:59:59 -2359"}) as url:
        handler = record_then_push(build_push_handler(settings_factory(erp_base_url=url, erp_api_token=TOKEN)))

        # when the order is pushed
        handler(delivery(order_body()), db_session)

    # then it is synced, its receipt marked by our clock (within a minute of its answer), and it reads back
    row = order_row(db_session)
    assert row.status == "synced" and abs(row.erp_received_at - row.synced_at) < timedelta(minutes=1)
    assert order_view(db_session, "ORD-1")["status"] == "synced"


def test_an_erp_dated_hours_ahead_marks_the_orders_receipt_on_our_clock(settings_factory, db_session, caplog):
    # given an ERP behind a server writing its local time as GMT: its answers dated 5.5 hours ahead
    ahead = format_datetime(datetime.now(UTC) + timedelta(hours=5, minutes=30), usegmt=True)
    with answering(201, b"{}", {"Date": ahead}) as url, caplog.at_level(logging.WARNING):
        handler = record_then_push(build_push_handler(settings_factory(erp_base_url=url, erp_api_token=TOKEN)))

        # when the order is pushed
        handler(delivery(order_body()), db_session)

    # then its receipt is marked on our clock (a mark hours ahead would keep its holds past every ERP
    # figure until the grace period), and a WARNING says why
    row = order_row(db_session)
    assert row.status == "synced" and abs(row.erp_received_at - row.synced_at) < timedelta(minutes=1)
    assert any("ORD-1" in r.getMessage() and "ahead of our clock" in r.getMessage() for r in caplog.records)


def test_an_orders_error_keeps_its_first_2000_characters(make_handler, sandbox, db_session):
    # given an order pushed, and another whose message was too malformed to record more than its id
    make_handler()(delivery(order_body()), db_session)
    record_rejected(db_session, "ORD-BAD", "malformed order message: " + "r" * 5000)

    # when a push records an ERP answer of a whole page
    row, _ = lock(db_session, "ORD-1")
    row.last_error = "e" * 5000
    save(db_session, row)

    # then each row keeps the start of its error, 2,000 characters
    assert ERROR_CHARS == 2000
    assert order_row(db_session).last_error == "e" * 2000
    assert order_row(db_session, "ORD-BAD").last_error == ("malformed order message: " + "r" * 5000)[:2000]


def test_unreachable_erp_makes_order_pending_with_a_retry(make_handler, sandbox, db_session):
    sandbox.fault("down")
    handle = make_handler()

    # when the push fails
    [retry] = handle(delivery(order_body()), db_session)

    # then the order waits, held, and a retry naming it goes round the orders delay queue
    row = order_row(db_session)
    assert row.status == "pending_sync" and row.attempts == 1 and row.first_attempt_at and row.last_error
    assert row.next_attempt_at > row.first_attempt_at
    assert (retry.exchange, retry.routing_key, retry.message_id) == (RETRY_EXCHANGE, "orders-push.1000ms", "ORD-1")
    assert retry.body == push_body() and retry.headers == {}
    assert len(open_holds(db_session)) == 1
    # and neither a duplicate of the original message nor a retry before its time starts a second retry chain
    assert handle(delivery(order_body(), tag=2), db_session) is None
    assert handle.push(delivery(retry.body, tag=3), db_session) is None

    # when the retry arrives after its interval and the ERP is back
    interval_passed(db_session)
    sandbox.fault("none")
    assert handle.push(delivery(retry.body, tag=4), db_session) == []

    # then it is synced, in the ERP once
    row = order_row(db_session)
    assert row.status == "synced" and row.attempts == 2 and row.last_error is None
    assert len(sandbox.orders()) == 1


@pytest.fixture
def pending_order(settings_factory, sandbox, db_session):
    """ORD-1 pending_sync after one attempt, its retry a minute away; the ERP still down. Yields the push handler."""
    settings = settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN, order_retry_interval_s=60,
                                order_retry_window_s=600, erp_quick_retries=1, erp_connect_timeout_s=1)
    push = build_push_handler(settings)
    record_order(delivery(order_body()), db_session)
    sandbox.fault("down")
    push(delivery(order_body()), db_session)
    return push


def test_a_redelivered_push_of_a_pending_order_is_pushed_but_a_plain_duplicate_is_not(pending_order, sandbox,
                                                                                     db_session):
    # given an order pending_sync whose next retry is a minute away
    push = pending_order
    assert order_row(db_session).status == "pending_sync"
    sandbox.fault("none")

    # when a plain duplicate arrives, then nothing is pushed: the retry on its way will do it
    assert push(delivery(order_body(), tag=2), db_session) is None
    assert sandbox.orders() == [] and order_row(db_session).attempts == 1

    # when the broker hands a message out again (its first delivery died with a worker), then it is pushed
    assert push(delivery(order_body(), tag=3, redelivered=True), db_session) == []
    row = order_row(db_session)
    assert row.status == "synced" and row.attempts == 2
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-1"]


def test_a_resend_overtaken_by_a_push_starts_no_second_retry_chain(pending_order, sandbox, db_session):
    # given an order pending_sync after one attempt, and a probe re-send of it on its way
    push = pending_order
    resend = delivery(push_body(), tag=2)

    # when another push came first (a second attempt, still failing, with its own retry on its way)
    push(delivery(order_body(), tag=3, redelivered=True), db_session)
    assert order_row(db_session).attempts == 2

    # then the stale re-send neither pushes nor starts another retry chain
    assert push(resend, db_session) is None
    assert order_row(db_session).attempts == 2

    # but once that retry is due, a message naming the order pushes it
    interval_passed(db_session)
    sandbox.fault("none")
    assert push(delivery(push_body(), tag=4), db_session) == []
    assert order_row(db_session).status == "synced"
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-1"]


@pytest.mark.parametrize("headers", [{}, {"x-erp-sync-order-retry": 1},
                                     {"x-erp-sync-order-resend": 1, "x-erp-sync-order-stranded": 1}])
def test_a_push_message_of_the_previous_release_is_decided_by_the_row(pending_order, sandbox, db_session, headers):
    # given an order pending_sync whose retry is a minute away, and messages queued by the previous
    # release (the whole order as body, with or without its retry and re-send marks)
    push = pending_order
    sandbox.fault("none")

    # when one arrives before the order is due, then it is ignored whatever its marks
    assert push(delivery(order_body(), tag=2, headers=headers), db_session) is None

    # when one arrives once it is due, then it is pushed
    interval_passed(db_session)
    assert push(delivery(order_body(), tag=3, headers=headers), db_session) == []
    assert order_row(db_session).status == "synced" and order_row(db_session).attempts == 2


def test_a_recorded_order_asks_for_its_push_by_id_alone(db_session):
    # given an order.placed message carrying an unrelated header
    headers = {"x-erp-sync-order-retry": 3, "x-storefront-trace": "abc"}

    # when it is recorded
    [handed_on] = record_order(delivery(order_body(), headers=headers), db_session).follow_ups

    # then the message to the push queue names the order and nothing else
    assert (handed_on.exchange, handed_on.routing_key) == (ORDERS_PUSH_QUEUE.exchange, ORDERS_PUSH_QUEUE.routing_key)
    assert handed_on.headers == {} and handed_on.body == push_body() and handed_on.message_id == "ORD-1"


def test_a_push_message_naming_no_recorded_order_is_parked(make_handler, db_session):
    with pytest.raises(MessageDecodeError):
        make_handler().push(delivery(push_body("ORD-NOWHERE")), db_session)


def test_order_goes_local_only_after_the_window(make_handler, sandbox, db_session):
    sandbox.fault("5xx")
    handle = make_handler()
    [retry] = handle(delivery(order_body()), db_session)
    # given its first attempt is older than the window
    order_row(db_session).first_attempt_at = datetime.now(UTC) - timedelta(seconds=4)
    db_session.flush()
    interval_passed(db_session)

    # when the retry fails again
    follow_ups = handle.push(delivery(retry.body, tag=2), db_session)

    # then no more retries: local_only, stock still held
    row = order_row(db_session)
    assert follow_ups == [] and row.status == "local_only" and row.attempts == 2
    assert len(open_holds(db_session)) == 1

    # and a re-sent message that fails again leaves it local_only
    assert handle.push(delivery(retry.body, tag=3), db_session) == []
    assert order_row(db_session).status == "local_only"


def test_local_only_orders_go_oldest_first_and_one_that_fails_again_waits_behind_the_others(
        make_handler, sandbox, db_session):
    # given three local_only orders, from the oldest ORD-1 to ORD-3
    handle = make_handler()
    sandbox.fault("down")
    for order_id in ("ORD-1", "ORD-2", "ORD-3"):
        handle(delivery(order_body(order_id)), db_session)
    db_session.execute(text("UPDATE orders SET status = 'local_only', next_attempt_at = NULL"))
    assert claim(db_session, None, local_only=True) == [("ORD-1", "local_only")]

    # when the oldest is pushed again and fails, then the next round starts with the one after it
    assert handle.push(delivery(push_body("ORD-1")), db_session) == []
    assert order_row(db_session, "ORD-1").status == "local_only"
    assert claim(db_session, None, local_only=True) == [("ORD-2", "local_only")]

    # when the ERP answers again, each order it takes asks for the next due one, until none is left
    sandbox.fault("none")
    [following] = handle.push(delivery(push_body("ORD-2")), db_session)
    assert following.body == push_body("ORD-3")
    assert handle.push(delivery(following.body), db_session) == []
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-2", "ORD-3"]


def test_a_local_only_order_failing_at_every_round_holds_back_none_of_the_others(make_handler, sandbox, db_session):
    # given three local_only orders, the oldest of which, ORD-1, fails again
    handle = make_handler()
    sandbox.fault("down")
    for order_id in ("ORD-1", "ORD-2", "ORD-3"):
        handle(delivery(order_body(order_id)), db_session)
    db_session.execute(text("UPDATE orders SET status = 'local_only', next_attempt_at = NULL"))
    handle.push(delivery(push_body("ORD-1")), db_session)

    # when its retry is due again by the next probe round (ORDER_RETRY_INTERVAL_S <= ERP_PROBE_INTERVAL_S)
    overdue_by(db_session, {"ORD-1": 1})

    # then that round goes on with the next order not tried since it turned local_only
    assert claim(db_session, None, local_only=True) == [("ORD-2", "local_only")]
    handle.push(delivery(push_body("ORD-2")), db_session)
    assert claim(db_session, None, local_only=True) == [("ORD-3", "local_only")]

    # and once every one has failed again, the one overdue longest goes first
    handle.push(delivery(push_body("ORD-3")), db_session)
    overdue_by(db_session, {"ORD-1": 1, "ORD-2": 3, "ORD-3": 2})
    assert claim(db_session, None, local_only=True) == [("ORD-2", "local_only")]


def overdue_by(session, seconds: dict[str, int]) -> None:
    for order_id, overdue_s in seconds.items():
        session.execute(text("UPDATE orders SET next_attempt_at = now() - make_interval(secs => :s) WHERE order_id = :o"),
                        {"s": overdue_s, "o": order_id})


@pytest.mark.parametrize("body, problem", [
    (order_body(quantity=0), "quantity"),
    (order_body(quantity="2"), "quantity"),
    (json.dumps({"order_id": "ORD-1", "order_date": "yesterday", "line_items": []}).encode(), "order_date"),
    (json.dumps({"order_id": "ORD-1", "order_date": "2024-01-20T10:15:00", "customer_ref": "C",
                 "line_items": [{"sku": SKU, "quantity": 1, "unit_price": 1.0}]}).encode(), "order_date"),
    (order_body().replace(b"79900.0", b"799.001"), "unit_price"),
    # Stored by PostgreSQL in 1 BC, read back into no Python datetime: never pushed nor shown.
    (json.dumps({"order_id": "ORD-1", "order_date": "0001-01-01T00:00:00+01:00",
                 "line_items": [{"sku": SKU, "quantity": 1, "unit_price": 1.0}]}).encode(), "order_date"),
    # Published around publish_order, which refuses it.
    (order_of_lines(1_001), "at most 1,000 lines an order, not 1,001: place it as several orders"),
])
def test_malformed_order_is_recorded_rejected_and_parked(make_handler, sandbox, db_session, body, problem):
    [parked] = make_handler()(delivery(body), db_session)

    row = order_row(db_session)
    assert row.status == "rejected" and problem in row.last_error and row.holds == []
    assert (parked.exchange, parked.routing_key, parked.body) == (PARKING_EXCHANGE, "orders", body)
    assert problem in parked.headers[PARK_REASON_HEADER]
    assert sandbox.orders() == []


def test_a_malformed_order_shows_the_date_and_customer_it_gave_where_each_is_valid(make_handler, db_session):
    # a quantity as text: the order was shown dated at its receipt, its customer "" (a storefront audit)
    make_handler()(delivery(order_body(quantity="1")), db_session)
    make_handler()(delivery(json.dumps({"order_id": "ORD-2", "order_date": "yesterday", "customer_ref": 7,
                                        "line_items": []}).encode()), db_session)

    given = order_row(db_session)
    assert (given.order_date, given.customer_ref) == (datetime(2024, 1, 20, 10, 15, tzinfo=UTC), "CUST-555")
    unreadable = order_row(db_session, "ORD-2")
    assert unreadable.customer_ref == "" and unreadable.order_date > datetime.now(UTC) - timedelta(minutes=5)


def test_an_order_queued_under_an_id_no_header_can_carry_is_rejected_unsent_its_stock_released(
        make_handler, sandbox, db_session, caplog):
    # given an order queued under an id of Chinese characters (published before publish_order refused
    # such ids, or around it), which the ERP's Idempotency-Key header cannot carry
    # when the orders worker records it and pushes it (it failed at every push, blaming ERP_API_TOKEN,
    # and held its stock for good)
    follow_ups = make_handler()(delivery(order_body("ORD-中文")), db_session)

    # then it is rejected without a call, its stock released, and the alert says who rejected it
    row = order_row(db_session, "ORD-中文")
    assert follow_ups == [] and row.status == "rejected" and "never sent" in row.last_error
    assert open_holds(db_session, "ORD-中文") == [] and sandbox.orders() == []
    assert "order ORD-中文 rejected by erp-sync; stock released" in caplog.text


def test_an_order_queued_under_a_latin_1_id_goes_to_the_erp_as_it_did(make_handler, sandbox, db_session):
    # given an order publish_order took before it refused ids beyond printable ASCII
    # when the orders worker records it and pushes it, then it reaches the ERP, as such orders did
    assert make_handler()(delivery(order_body("ORD-é-3")), db_session) == []
    assert order_row(db_session, "ORD-é-3").status == "synced"
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-é-3"]


def test_a_rejected_local_only_order_unsent_still_hands_on_to_the_next(make_handler, sandbox, db_session):
    # given two local_only orders, the first under an id no header can carry (recorded while the ERP was down)
    handle = make_handler()
    sandbox.fault("down")
    handle(delivery(order_body("ORD-2")), db_session)
    record_order(delivery(order_body("ORD-中文")), db_session)
    db_session.execute(text("UPDATE orders SET status = 'local_only', next_attempt_at = NULL"))
    sandbox.fault("none")

    # when the first is re-sent and rejected without a call, then the next follows, as after an ERP's answer
    [following] = handle.push(delivery(push_body("ORD-中文")), db_session)
    assert following.body == push_body("ORD-2")


def test_an_order_body_over_the_limit_is_rejected_and_parked_unread(make_handler, sandbox, db_session, caplog):
    # given an order of 100,000 lines (5 MB) published around publish_order under its order id as message id:
    # a 1,000,000-line one took the orders worker 1.6 GB and 50 s, and under 512 MiB killed it at each delivery
    body = order_of_lines(100_000)

    # when the orders worker takes it
    tracemalloc.start()
    try:
        [parked] = make_handler()(delivery(body), db_session)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # then it was never parsed (that takes 5 times the body), and is rejected and parked saying why
    assert peak < len(body)
    reason = f"order body of {len(body):,} bytes, over the 1,048,576 an order may take (at most 1,000 lines)"
    row = order_row(db_session)
    assert row.status == "rejected" and reason in row.last_error and row.holds == []
    assert (parked.exchange, parked.routing_key, parked.body) == (PARKING_EXCHANGE, "orders", body)
    assert reason in parked.headers[PARK_REASON_HEADER]
    assert f"ALERT order ORD-1: parking malformed message: malformed order message: {reason}" in caplog.text
    assert sandbox.orders() == []


def test_an_order_body_over_the_limit_that_gives_another_id_than_its_message_is_parked_unrecorded(
        make_handler, db_session):
    # given a body over the limit whose order id is not its message's (ORD-1): which is the order's is unknown unread
    body = order_of_lines(100_000, order_id="ORD-2")

    with pytest.raises(MessageDecodeError, match="over the 1,048,576 an order may take"):
        make_handler()(delivery(body), db_session)

    assert db_session.scalars(select(Order)).all() == []


def test_an_order_recorded_before_the_line_limit_and_redelivered_after_it_is_still_pushed(
        db_session, monkeypatch, caplog):
    # given an order of 1,500 lines an earlier release recorded, whose worker died before its push went out
    monkeypatch.setattr(orders_module, "MAX_ORDER_LINES", 10**6)
    body = order_of_lines(1_500)
    record_order(delivery(body), db_session)
    monkeypatch.setattr(orders_module, "MAX_ORDER_LINES", 1_000)

    # when its message comes again to the worker of this release, which refuses more than 1,000 lines
    parked, push = record_order(delivery(body, redelivered=True), db_session)

    # then the copy is parked, and the order recorded is left as it is and goes on to be pushed
    # (it waited ORDER_STRANDED_AFTER_S, 4 h, for the probe, its ALERT saying it was malformed)
    assert (parked.exchange, parked.body) == (PARKING_EXCHANGE, body)
    assert (push.routing_key, push.body) == (ORDERS_PUSH_QUEUE.routing_key, push_body("ORD-1"))
    row = order_row(db_session)
    assert row.status == "received" and len(row.holds) == 1_500
    assert "the order recorded already under its id is left as it is" in caplog.text


@pytest.mark.parametrize("body", [b"not json", b"[]", json.dumps({"line_items": []}).encode()])
def test_malformed_message_without_an_order_id_is_parked_by_the_consumer(make_handler, db_session, body):
    with pytest.raises(MessageDecodeError) as caught:
        make_handler()(delivery(body), db_session)
    assert caught.value.raw == body


def apply_figure(session, quantity: int, as_of: datetime) -> None:
    # The statement every stock writer uses: an absolute figure moves erp_as_of.
    session.execute(text(
        "INSERT INTO stock_levels (sku, erp_quantity, erp_as_of) VALUES (:s, :q, :t) "
        "ON CONFLICT (sku) DO UPDATE SET erp_quantity = excluded.erp_quantity, erp_as_of = excluded.erp_as_of "
        "WHERE stock_levels.erp_as_of <= excluded.erp_as_of"), {"s": SKU, "q": quantity, "t": as_of})


def test_hold_ends_with_the_erps_figure_stamped_at_its_receipt_of_the_order(make_handler, db_session):
    make_handler()(delivery(order_body()), db_session)
    received = order_row(db_session).erp_received_at
    assert received is not None and received <= order_row(db_session).synced_at

    # when a figure stamped before the ERP received the order is applied
    apply_figure(db_session, 50, received - timedelta(seconds=1))
    # then the order is still held
    assert len(open_holds(db_session)) == 1

    # when the ERP's figure stamped at its receipt (its deduction, in whole seconds) arrives
    apply_figure(db_session, 48, received)
    # then the hold ends
    assert open_holds(db_session) == []
    assert [h.release_reason for h in order_row(db_session).holds] == ["erp_figure"]
    assert stock_view(db_session, SKU).available == 48


def test_a_hold_the_erps_answer_releases_is_stamped_when_it_was_released(make_handler, sandbox, db_session):
    # given the ERP's figure for the SKU, stamped after it will have taken the order, already applied,
    # and an ERP that takes a second over the order
    apply_figure(db_session, 48, datetime.now(UTC) + timedelta(hours=1))
    sandbox.fault("slow", delay_ms=1000)

    # when the order is pushed, and the ERP's answer recorded
    make_handler()(delivery(order_body()), db_session)

    # then the hold ended as the answer was recorded, after the second the ERP took: not at the
    # start of the push's transaction, before the first attempt
    row = order_row(db_session)
    [hold] = row.holds
    assert hold.release_reason == "erp_figure"
    assert hold.released_at - row.first_attempt_at >= timedelta(seconds=0.9)
    assert row.updated_at - row.first_attempt_at >= timedelta(seconds=0.9)


def test_unsynced_order_keeps_its_hold_whatever_figure_arrives(make_handler, sandbox, db_session):
    sandbox.fault("down")
    make_handler()(delivery(order_body()), db_session)

    apply_figure(db_session, 50, datetime.now(UTC) + timedelta(hours=1))

    assert len(open_holds(db_session)) == 1


def test_a_figure_that_names_the_order_ends_only_that_orders_hold_of_its_sku(make_handler, sandbox, db_session):
    # given two orders the ERP has not answered for (no receipt mark: the clocks cannot end their holds)
    sandbox.fault("down")
    make_handler()(delivery(order_body("ORD-1")), db_session)
    make_handler()(delivery(order_body("ORD-2")), db_session)
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

    # when figures name ORD-1: one of another SKU, one of its own SKU stamped an hour ago
    apply_inventory_change(decode_event_of(encode(inventory_event(sku="IPH15-128-BLU", new_quantity=40,
                                                                  reference_id="ORD-1")), InventoryChange), db_session)
    assert len(open_holds(db_session, "ORD-1")) == 1
    apply_inventory_change(decode_event_of(encode({**inventory_event(new_quantity=48, reference_id="ORD-1"),
                                                   "timestamp": old}), InventoryChange), db_session)

    # then ORD-1's hold ends as counted by the ERP, and ORD-2 stays held
    assert open_holds(db_session, "ORD-1") == []
    assert [h.release_reason for h in order_row(db_session, "ORD-1").holds] == ["erp_figure"]
    assert len(open_holds(db_session, "ORD-2")) == 1
    assert stock_view(db_session, SKU).available == 46


def test_an_erp_that_names_its_orders_ends_a_synced_orders_hold_only_with_the_named_figure(make_handler, db_session):
    # given an ERP that names every order in its figures (ERP_NAMES_ORDERS), and an order it took
    make_handler(erp_names_orders=True)(delivery(order_body()), db_session)
    assert order_row(db_session).status == "synced"

    # when a figure for the SKU that names no order arrives, stamped well after the ERP's answer
    apply_inventory_change(decode_event_of(encode({**inventory_event(new_quantity=49),
                                                   "timestamp": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}),
                                           InventoryChange), db_session)
    # then the order is still held: that figure may have been made before the deduction
    assert len(open_holds(db_session)) == 1
    assert stock_view(db_session, SKU).available == 47

    # when the figure that names the order arrives, stamped earlier still
    apply_inventory_change(decode_event_of(encode({**inventory_event(new_quantity=48, reference_id="ORD-1"),
                                                   "timestamp": datetime.now(UTC).isoformat()}), InventoryChange),
                           db_session)
    # then the hold ends, and the shop shows the later figure
    assert open_holds(db_session) == []
    assert [h.release_reason for h in order_row(db_session).holds] == ["erp_figure"]
    assert stock_view(db_session, SKU).available == 49


@pytest.mark.parametrize("names_orders", [False, True])
def test_a_hold_past_its_grace_period_is_a_warning_only_when_the_erp_should_have_named_its_order(
        names_orders, make_handler, settings_factory, sandbox, committed_session, db_engine, broker, caplog):
    # given a synced order whose figure never came
    make_handler(erp_names_orders=names_orders)(delivery(order_body()), committed_session)
    committed_session.commit()
    publisher = ConfirmingPublisher(broker)
    client = erp_client(settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN))
    probe = OrderProbe(client, make_session_factory(db_engine), publisher,
                       interval_s=60, grace_period_s=3600, stranded_after_s=4 * 3600, erp_names_orders=names_orders)

    # when the probe runs past the grace period
    try:
        with caplog.at_level(logging.INFO, logger="erp_sync.workers.order_probe"):
            report = probe.once(datetime.now(UTC) + timedelta(seconds=3601))
    finally:
        publisher.close()

    # then the hold ends either way; a WARNING says so when the ERP should have named the order
    assert report.released_holds == 1
    [line] = [record for record in caplog.records if "grace period" in record.getMessage()]
    assert line.levelno == (logging.WARNING if names_orders else logging.INFO)
    assert ("ERP_NAMES_ORDERS" in line.getMessage()) is names_orders


def record_local_only(make_handler, session) -> None:
    """ORD-1 recorded, turned local_only and due, committed."""
    make_handler()(delivery(order_body()), session)
    session.execute(text("UPDATE orders SET status = 'local_only', next_attempt_at = NULL"))
    session.commit()


def test_while_the_probe_waits_for_the_erp_no_order_is_held_up_behind_it(make_handler, settings_factory, sandbox,
                                                                          committed_session, db_engine, broker):
    # given a local_only order, and an ERP that takes 5 s to begin its snapshot (orders allow it 1 s)
    record_local_only(make_handler, committed_session)
    sandbox.fault("slow", delay_ms=5000)
    publisher = ConfirmingPublisher(broker)
    client = erp_client(settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN, erp_read_timeout_s=1,
                                         reconcile_read_timeout_s=15))
    probe = OrderProbe(client, make_session_factory(db_engine), publisher,
                       interval_s=60, grace_period_s=3600, stranded_after_s=4 * 3600)
    reports = []
    round_ = threading.Thread(target=lambda: reports.append(probe.once()))

    # when a probe round asks the ERP
    try:
        round_.start()
        wait_for(lambda: sandbox.held() == 1)
        # then the order's row is free meanwhile: its own push, or an operator's, would not wait
        with db_engine.connect() as other:
            assert other.execute(text("SELECT order_id FROM orders WHERE order_id = 'ORD-1' FOR UPDATE NOWAIT")
                                 ).scalar_one() == "ORD-1"
            other.rollback()
        assert sandbox.held() == 1  # the probe was waiting all along
        round_.join(timeout=30)
    finally:
        publisher.close()

    # and the round, given the sweep's read timeout, sees the ERP answer and re-sends the order
    [report] = reports
    assert (report.erp_answers, report.resent) == (True, ("ORD-1",))


def test_a_worker_stopping_while_its_probe_waits_for_the_erp_stops_now(make_handler, settings_factory, sandbox,
                                                                        committed_session, db_engine, broker):
    # given the probe loop of an orders worker asking an ERP that takes 30 s to begin its snapshot
    record_local_only(make_handler, committed_session)
    sandbox.fault("slow", delay_ms=30_000)
    publisher = ConfirmingPublisher(broker)
    client = erp_client(settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN, reconcile_read_timeout_s=60))
    probe = OrderProbe(client, make_session_factory(db_engine), publisher,
                       interval_s=0.05, grace_period_s=3600, stranded_after_s=4 * 3600)
    stop = threading.Event()
    loop = threading.Thread(target=probe.run, args=(stop,))
    try:
        loop.start()
        wait_for(lambda: sandbox.held() == 1)

        # when the worker is told to stop
        stop.set()

        # then the loop ends now, not when the ERP answers, and the order waits local_only as it was
        loop.join(timeout=10)
        assert not loop.is_alive()
    finally:
        stop.set()
        publisher.close()
    committed_session.expire_all()
    assert order_row(committed_session).status == "local_only"


def test_a_probe_round_without_the_database_is_one_warning_line_not_a_traceback(settings_factory, sandbox, broker,
                                                                                 caplog):
    # given the probe of a worker whose database is down
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/erp_sync")
    publisher = ConfirmingPublisher(broker)
    client = erp_client(settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN))
    probe = OrderProbe(client, make_session_factory(engine), publisher,
                       interval_s=0.01, grace_period_s=3600, stranded_after_s=4 * 3600)
    stop = threading.Event()

    # when it runs a few rounds
    with caplog.at_level(logging.INFO, logger="erp_sync.workers.order_probe"):
        threading.Timer(0.2, stop.set).start()
        try:
            probe.run(stop)
        finally:
            publisher.close()
            engine.dispose()

    # then each failed round is one WARNING saying why, as an outage is expected to be
    failed = [record for record in caplog.records if "probe round failed" in record.getMessage()]
    assert failed and all(r.levelno == logging.WARNING and r.exc_info is None for r in failed)
    assert "database unavailable" in failed[0].getMessage()


def test_grace_period_releases_only_holds_acknowledged_long_ago(make_handler, db_session):
    make_handler()(delivery(order_body()), db_session)
    now = datetime.now(UTC)

    assert release_expired_holds(db_session, 3600, now) == 0
    assert len(open_holds(db_session)) == 1

    assert release_expired_holds(db_session, 3600, now + timedelta(seconds=3601)) == 1
    assert [h.release_reason for h in order_row(db_session).holds] == ["grace_period"]


def test_orders_worker_needs_the_erp_settings(settings_factory):
    from erp_sync.shared.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ERP_BASE_URL"):
        build_push_handler(settings_factory(erp_api_token=TOKEN))
    with pytest.raises(ConfigurationError, match="ERP_API_TOKEN"):
        build_push_handler(settings_factory(erp_base_url="http://127.0.0.1:9"))


def test_an_order_the_erp_refuses_our_token_for_mails_that_alone_not_an_outage(make_handler, sandbox, db_session,
                                                                               alert_mail, inbox):
    # given alert mail, and a worker with a token the ERP refuses
    _, sender = alert_mail()
    handle = make_handler(erp_api_token="a-token-the-erp-does-not-know")

    # when an order is pushed
    handle(delivery(order_body("ORD-TOKEN")), db_session)
    sender.close()

    # then it waits, and the one mail names the setting to fix: the ERP is not down
    assert order_row(db_session, "ORD-TOKEN").status == "pending_sync"
    assert [subject.split(":")[0] for subject in inbox.subjects()] == ["[erp-sync] erp_misconfigured"]


def test_an_order_waiting_rejected_or_local_only_mails_its_cause(make_handler, sandbox, db_session, alert_mail, inbox):
    # given alert mail, and an ERP that fails the first order, then refuses the second
    _, sender = alert_mail()
    sandbox.fault("5xx")
    handle = make_handler()
    [retry] = handle(delivery(order_body("ORD-1")), db_session)
    order_row(db_session).first_attempt_at = datetime.now(UTC) - timedelta(seconds=4)
    db_session.flush()
    interval_passed(db_session)

    # when the first is retried past its window, and the second is refused
    handle.push(delivery(retry.body, tag=2), db_session)
    sandbox.fault("none", reject_skus=[SKU])
    handle(delivery(order_body("ORD-2"), tag=3), db_session)
    sender.close()

    # then one mail per cause went out, in order, each naming its order
    subjects = inbox.subjects()
    assert [subject.split(":")[0] for subject in subjects] == [
        "[erp-sync] erp_unreachable", "[erp-sync] order_local_only", "[erp-sync] order_rejected"]
    assert all(order_id in subject for order_id, subject in zip(("ORD-1", "ORD-1", "ORD-2"), subjects, strict=True))
