"""The orders worker's two runners over whole batches: real commits, PostgreSQL and the sandbox ERP over HTTP."""
from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import select, text

from erp_sync.shared.consumer import ConsumerConfig, Delivery, Done, Park
from erp_sync.shared.db import check_database, make_engine, make_session_factory
from erp_sync.shared.models import Order, StockHold
from erp_sync.shared.retry_policy import PARK_REASON_HEADER
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, PARKING_EXCHANGE
from tests.support.sandbox import TOKEN
from tests.support.orders import SKU, delivery, order_body, order_of_lines, push_body
from tests.support.sandbox import running_sandbox
from tests.support.tcp_proxy import TcpProxy
from erp_sync.workers.orders import build_push_runner, build_runner
from erp_sync.workers.outage_hold import OutageHold

CONFIG = ConsumerConfig(amqp_url="amqp://unused", retry_delays_ms=(200, 400), max_attempts=5)


@pytest.fixture
def sandbox(tmp_path):
    with running_sandbox(tmp_path) as running:
        yield running


class Orders:
    """The worker's two queues as the tests play them: record a batch, then push what it handed on."""

    def __init__(self, settings, sessions) -> None:
        self.record = build_runner(settings, sessions, CONFIG)
        self.push = build_push_runner(settings, sessions, CONFIG)

    def recorded(self, batch: list[Delivery]) -> tuple[list, list[Delivery]]:
        """The record outcomes, and the push requests they handed on, as the push queue delivers them."""
        outcomes = self.record.run(batch)
        requests = [message for outcome in outcomes if isinstance(outcome, Done) for message in outcome.follow_ups
                    if (message.exchange, message.routing_key) == (ORDERS_PUSH_QUEUE.exchange,
                                                                   ORDERS_PUSH_QUEUE.routing_key)]
        return outcomes, [Delivery(1000 + n, m.body, m.message_id, m.content_type, m.headers)
                          for n, m in enumerate(requests)]

    def run(self, batch: list[Delivery]) -> list:
        """Record, then push; each message's final outcome (parked ones as recording left them)."""
        outcomes, requests = self.recorded(batch)
        pushed = iter(self.push.run(requests))
        return [next(pushed) if isinstance(o, Done) and o.follow_ups and o.follow_ups[0].exchange != PARKING_EXCHANGE
                else o for o in outcomes]


@pytest.fixture
def runner(settings_factory, sandbox, db_engine, committed_session):
    settings = settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN, order_push_concurrency=4,
                                erp_quick_retries=1, erp_read_timeout_s=5)
    return Orders(settings, make_session_factory(db_engine))


def statuses(session) -> dict[str, str]:
    session.expire_all()
    return {row.order_id: row.status for row in session.scalars(select(Order))}


def attempts(session) -> dict[str, int]:
    session.expire_all()
    return {row.order_id: row.attempts for row in session.scalars(select(Order))}


def open_holds(session) -> list[tuple[str, int]]:
    """Every open hold as (order id, quantity), one per row: a hold recorded twice shows twice."""
    holds = session.scalars(select(StockHold).where(StockHold.released_at.is_(None)))
    return sorted((hold.order_id, hold.quantity) for hold in holds)


def test_a_batch_is_recorded_and_each_order_reaches_the_erp_once(runner, sandbox, committed_session):
    # given ten orders, one of them twice in the same batch
    batch = [delivery(order_body(f"ORD-{n}", quantity=1), tag=n) for n in range(10)]
    batch.append(delivery(order_body("ORD-3", quantity=1), tag=10))

    outcomes = runner.run(batch)

    # then every message is done, every order pushed once, synced and held once
    assert outcomes == [Done()] * len(batch)
    assert statuses(committed_session) == {f"ORD-{n}": "synced" for n in range(10)}
    assert attempts(committed_session) == {f"ORD-{n}": 1 for n in range(10)}
    assert open_holds(committed_session) == sorted((f"ORD-{n}", 1) for n in range(10))
    assert sorted(o["order_id"] for o in sandbox.orders()) == sorted(f"ORD-{n}" for n in range(10))
    assert sandbox.stock(SKU) == 40


def test_a_recorded_batch_is_committed_with_its_holds_and_handed_on_to_be_pushed(runner, sandbox, committed_session):
    # when a batch is recorded (the ERP not yet called)
    outcomes, requests = runner.recorded([delivery(order_body("ORD-1")), delivery(order_body("ORD-2", quantity=1))])

    # then both orders are committed and held, and the push queue is asked to push each
    assert statuses(committed_session) == {"ORD-1": "received", "ORD-2": "received"}
    assert open_holds(committed_session) == [("ORD-1", 2), ("ORD-2", 1)]
    assert sandbox.orders() == []
    assert [r.message_id for r in requests] == ["ORD-1", "ORD-2"]
    assert [r.body for r in requests] == [push_body("ORD-1"), push_body("ORD-2")]

    # and pushing them syncs both
    assert runner.push.run(requests) == [Done(), Done()]
    assert statuses(committed_session) == {"ORD-1": "synced", "ORD-2": "synced"}


def test_a_malformed_order_is_parked_and_the_rest_of_its_batch_goes_through(runner, sandbox, committed_session):
    malformed = order_body("ORD-BAD", quantity=0)
    no_order_id = b'{"line_items": []}'

    outcomes = runner.run([delivery(order_body("ORD-1"), tag=1), delivery(malformed, tag=2),
                           delivery(no_order_id, tag=3), delivery(order_body("ORD-2"), tag=4)])

    # then the good orders are synced; the malformed one is recorded rejected and parked with its reason
    assert [type(outcome) for outcome in outcomes] == [Done, Done, Park, Done]
    assert outcomes[0] == outcomes[3] == Done()
    [parked] = outcomes[1].follow_ups
    assert (parked.exchange, parked.body) == (PARKING_EXCHANGE, malformed)
    assert "quantity" in parked.headers[PARK_REASON_HEADER]
    assert statuses(committed_session) == {"ORD-1": "synced", "ORD-2": "synced", "ORD-BAD": "rejected"}
    assert sorted(o["order_id"] for o in sandbox.orders()) == ["ORD-1", "ORD-2"]


def test_an_order_too_large_is_parked_and_the_orders_around_it_reach_the_erp(runner, sandbox, committed_session):
    # given a batch with an order of 100,000 lines between two others: recorded whole, it held the
    # orders behind it for 5 s (1,000,000 lines: 50 s)
    too_large = order_of_lines(100_000, order_id="ORD-BIG")
    batch = [delivery(order_body("ORD-1"), tag=1), Delivery(2, too_large, "ORD-BIG", "application/json"),
             delivery(order_body("ORD-2"), tag=3)]

    outcomes = runner.run(batch)

    # then the large one is rejected and parked, and the others are synced, each in the ERP once
    assert [type(outcome) for outcome in outcomes] == [Done, Done, Done]
    [parked] = outcomes[1].follow_ups
    assert (parked.exchange, parked.body) == (PARKING_EXCHANGE, too_large)
    assert "over the 1,048,576 an order may take" in parked.headers[PARK_REASON_HEADER]
    assert statuses(committed_session) == {"ORD-1": "synced", "ORD-2": "synced", "ORD-BIG": "rejected"}
    assert sorted(o["order_id"] for o in sandbox.orders()) == ["ORD-1", "ORD-2"]
    assert open_holds(committed_session) == [("ORD-1", 2), ("ORD-2", 2)]


def test_a_redelivered_order_starts_no_second_retry_chain(runner, sandbox, committed_session):
    # given an order whose push failed (the ERP down): recorded, pending_sync, its retry on its way
    sandbox.fault("down")
    [failed] = runner.run([delivery(order_body("ORD-1"))])
    [retry] = failed.follow_ups
    sandbox.fault("none")

    # when its order.placed message comes again, redelivered (the worker died before its ack)
    assert runner.run([delivery(order_body("ORD-1"), redelivered=True)]) == [Done()]

    # then nothing more is pushed or recorded: the retry already on its way will push it
    assert statuses(committed_session) == {"ORD-1": "pending_sync"} and attempts(committed_session) == {"ORD-1": 1}
    lines = committed_session.execute(text("SELECT count(*) FROM order_lines WHERE order_id = 'ORD-1'")).scalar()
    assert lines == 1 and open_holds(committed_session) == [("ORD-1", 2)]
    assert sandbox.orders() == []

    # when the retry comes round after its interval, the order is synced, in the ERP once
    committed_session.execute(text("UPDATE orders SET next_attempt_at = clock_timestamp() - interval '1 second'"))
    committed_session.commit()
    assert runner.push.run([Delivery(7, retry.body, retry.message_id, retry.content_type, retry.headers)]) == [Done()]
    assert statuses(committed_session) == {"ORD-1": "synced"} and attempts(committed_session) == {"ORD-1": 2}
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-1"]


def test_a_duplicate_of_a_settled_order_is_not_pushed_again(runner, sandbox, committed_session):
    runner.run([delivery(order_body("ORD-1"))])

    outcomes = runner.run([delivery(order_body("ORD-1"), tag=2)])

    assert outcomes == [Done()]
    assert attempts(committed_session) == {"ORD-1": 1} and open_holds(committed_session) == [("ORD-1", 2)]


def test_a_push_whose_database_goes_away_is_held_and_made_once_it_answers(settings_factory, sandbox, db_engine,
                                                                        committed_session, migrated_database_url):
    # given an order recorded, and the push's runner reaching PostgreSQL through a proxy, held
    # through an outage as the orders worker holds it
    settings = settings_factory(erp_base_url=sandbox.url, erp_api_token=TOKEN, erp_quick_retries=1)
    _, [push] = Orders(settings, make_session_factory(db_engine)).recorded([delivery(order_body())])
    parts = urlsplit(migrated_database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxied = make_engine(urlunsplit((parts.scheme, f"{parts.username}@127.0.0.1:{proxy.port}", parts.path, "", "")))
    held = OutageHold(build_push_runner(settings, make_session_factory(proxied), CONFIG),
                      lambda: check_database(proxied), threading.Event(), probe_interval_s=0.05)
    try:
        # when the database goes away as the push starts, and comes back a second later
        proxy.cut()
        threading.Timer(1.0, proxy.restore).start()
        [outcome] = held.run([push])
    finally:
        proxied.dispose()
        proxy.close()

    # then the push waited for it and was made: no retry through a delay queue, the ERP has it once
    assert isinstance(outcome, Done)
    assert statuses(committed_session) == {"ORD-1": "synced"}
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-1"]
