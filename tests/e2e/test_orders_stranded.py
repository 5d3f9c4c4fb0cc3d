"""Orders whose push message is lost (parked, purged): the probe re-sends them instead of holding stock for good."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.shared.models import Order
from erp_sync.shared.models.states import OrderStatus
from erp_sync.shared.orders import OrderPlaced
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
from tests.support.amqp import drain
from tests.support.orders import SKU, available, order, stock_figures, stock_history, wait_status
from erp_sync.workers.order_probe import OrderProbe
from erp_sync.workers.order_store import record_orders
from erp_sync.workers.erp_client import erp_client


def record_without_push(session, order_id: str, status: OrderStatus = OrderStatus.RECEIVED) -> None:
    """An order recorded with its hold whose push message never reached the push queue, or was parked."""
    record_orders(session, [OrderPlaced.model_validate(order(order_id, quantity=1))])
    if status is not OrderStatus.RECEIVED:
        past = datetime.now(UTC) - timedelta(minutes=5)
        session.execute(update(Order).where(Order.order_id == order_id)
                        .values(status=status.value, attempts=1, first_attempt_at=past, next_attempt_at=past))
    session.commit()


@pytest.fixture
def probe(order_settings, broker):  # noqa: F811
    """A probe that calls orders stranded after 1 s, on the run's database, broker and sandbox ERP."""
    settings = order_settings(order_stranded_after_s=1)
    engine = make_engine(settings.database_url)
    publisher = ConfirmingPublisher(broker)
    yield OrderProbe(erp_client(settings), make_session_factory(engine), publisher,
                     interval_s=60, grace_period_s=3600, stranded_after_s=1)
    publisher.close()
    engine.dispose()


def test_an_order_untouched_past_the_limit_is_resent_once_and_a_fresh_one_is_not(probe, broker, committed_session):
    # given an order stranded for over a second, and one recorded just now
    record_without_push(committed_session, "ORD-LOST")
    time.sleep(1.2)
    record_without_push(committed_session, "ORD-FRESH")

    # when the probe runs twice in a row
    first = probe.once()
    second = probe.once()

    # then only the stranded order went to the push queue, once, named and nothing more
    assert first.stranded == ("ORD-LOST",) and second.stranded == ()
    [resent] = drain(broker, ORDERS_PUSH_QUEUE.name)
    assert json.loads(resent.body) == {"order_id": "ORD-LOST"}
    assert not set(resent.properties.headers or {}) - {"x-delivery-count"}  # the broker's own count only
    # and nothing had to ask the ERP: no local_only order waits
    assert first.erp_answers is None


@pytest.mark.parametrize("status", [OrderStatus.RECEIVED, OrderStatus.PENDING_SYNC])
def test_a_stranded_order_reaches_the_erp_once_and_its_hold_stays_until_then(
        status, ingress, start_workers, order_settings, sandbox, stock_of_50, committed_session):  # noqa: F811
    # given an order holding stock whose push (or retry) message was lost
    record_without_push(committed_session, "ORD-STRANDED", status)
    assert stock_figures(ingress) == {"erp_quantity": 50, "reserved": 1, "available": 49}, stock_history(ingress)

    # when the orders worker runs with a short stranded limit
    start_workers("orders", with_settings=order_settings(order_stranded_after_s=1))

    # then the probe re-sends it and the ERP takes it, once, with the stock still held meanwhile
    state = wait_status(ingress, "ORD-STRANDED", "synced")
    assert state["attempts"] == (2 if status is OrderStatus.PENDING_SYNC else 1)
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-STRANDED"]
    assert sandbox.stock(SKU) == 49 and available(ingress) == 49
