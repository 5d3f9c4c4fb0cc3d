"""`erp-sync orders`: the person on call lists the waiting orders and pushes one now, without waiting for its retry."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.models import Order
from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
from erp_sync.workers.order_sync import push_message
from tests.support import cli
from tests.support.orders import SKU, order, wait_status


def test_a_waiting_order_is_listed_shown_and_pushed_now(ingress, storefront, start_workers, order_settings, sandbox,
                                                        stock_of_50, broker, migrated_database_url):
    # given an order left pending_sync by an ERP that was down, its next retry an hour away
    sandbox.fault("down")
    start_workers("orders", with_settings=order_settings(order_retry_interval_s=3600, order_retry_window_s=7200,
                                                         erp_probe_interval_s=3600))
    publish_order(storefront, order("ORD-CLI-1"))
    wait_status(ingress, "ORD-CLI-1", "pending_sync")
    sandbox.fault("none")
    env = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker}

    # when the operator lists what waits, looks at it, and pushes it now
    listed = cli.run("orders", "list", "--status", "pending_sync", **env)
    shown = cli.run("orders", "show", "ORD-CLI-1", **env)
    retried = cli.run("orders", "retry", "ORD-CLI-1", **env)

    # then it was listed and shown with its error, and it reaches the ERP once, long before its retry
    assert [json.loads(line)["order_id"] for line in listed.stdout.splitlines()] == ["ORD-CLI-1"], listed.stderr
    assert json.loads(shown.stdout)["last_error"] and json.loads(shown.stdout)["lines"][0]["sku"] == SKU
    assert retried.returncode == 0 and "pushing ORD-CLI-1" in retried.stdout, retried.stderr
    wait_status(ingress, "ORD-CLI-1", "synced", timeout=10)
    assert [o["order_id"] for o in sandbox.orders()] == ["ORD-CLI-1"]


def test_retrying_pushes_a_received_order_and_says_why_not_a_settled_or_unknown_one(broker, committed_session,
                                                                         migrated_database_url):
    # given a synced order and one just received
    for order_id, status in (("ORD-SYNCED", "synced"), ("ORD-NEW", "received")):
        committed_session.add(Order(order_id=order_id, order_date=datetime.now(UTC), customer_ref="C-1", status=status))
    committed_session.commit()

    # when the operator asks for them, and for one that does not exist, to be pushed now
    result = cli.run("orders", "retry", "ORD-SYNCED", "ORD-NEW", "ORD-NOWHERE", DATABASE_URL=migrated_database_url,
                     AMQP_URL=broker)

    # then the received one's push is sent again (its message may have been parked or purged; a push
    # finding it settled does nothing), and each other line says what the order is
    assert result.returncode == 1
    assert result.stdout == "pushing ORD-NEW\n"
    assert result.stderr.splitlines() == [
        "erp-sync: no order ORD-NOWHERE: not pushed",
        "erp-sync: order ORD-SYNCED is synced, not received, pending_sync or local_only: not pushed"]


def test_retrying_all_with_none_waiting_says_that_a_received_order_is_pushed_by_its_id(broker, committed_session,
                                                                                 migrated_database_url):
    # given only an order still received (its push message parked, say)
    committed_session.add(Order(order_id="ORD-STUCK", order_date=datetime.now(UTC), customer_ref="C-1"))
    committed_session.commit()

    # when the operator pushes all that wait
    result = cli.run("orders", "retry", "--all", DATABASE_URL=migrated_database_url, AMQP_URL=broker)

    # then nothing is pushed, and a line says how to push that one
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "erp-sync: no order is pending_sync or local_only: nothing to push. An order still received whose push "
        "message was parked is pushed by its id: `erp-sync orders retry ID`"]


def test_retrying_an_order_being_pushed_this_moment_says_so_without_waiting(broker, committed_session, db_engine,
                                                                        migrated_database_url):
    # given an order whose push holds its row while the ERP takes its time, and another one waiting
    for order_id in ("ORD-IN-FLIGHT", "ORD-WAITING"):
        committed_session.add(Order(order_id=order_id, order_date=datetime.now(UTC), customer_ref="C-1",
                                    status="pending_sync"))
    committed_session.commit()
    with db_engine.connect() as pushing:
        pushing.execute(text("SELECT 1 FROM orders WHERE order_id = 'ORD-IN-FLIGHT' FOR UPDATE"))

        # when the operator pushes both now, and then all
        named = cli.run("orders", "retry", "ORD-IN-FLIGHT", "ORD-WAITING", DATABASE_URL=migrated_database_url,
                        AMQP_URL=broker, DATABASE_LOCK_TIMEOUT_MS="60000")
        every = cli.run("orders", "retry", "--all", DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        DATABASE_LOCK_TIMEOUT_MS="60000")
        pushing.rollback()

    # then the waiting one is pushed, and the one in flight is told of at once (it waited for the
    # ERP's answer, then another lock timeout)
    assert named.stdout == "pushing ORD-WAITING\n"
    assert named.stderr.splitlines() == [
        "erp-sync: order ORD-IN-FLIGHT is being pushed this moment (`erp-sync orders show ORD-IN-FLIGHT` tells how "
        "it ends): not pushed"]
    assert every.returncode == 0 and every.stdout == "pushing ORD-WAITING\n"
    # and pushing all says that the other is being pushed, not only what it pushed itself
    assert every.stderr.startswith("erp-sync: 1 of the 2 waiting orders are being pushed this moment"), every.stderr


def test_a_list_cut_at_its_limit_says_how_many_more_there_are(committed_session, migrated_database_url):
    # given four synced orders, the last two recorded in one batch (one created_at)
    batch = datetime.now(UTC)
    for order_id, created_at in (("ORD-A", batch - timedelta(minutes=2)), ("ORD-B", batch - timedelta(minutes=1)),
                                 ("ORD-D", batch), ("ORD-C", batch)):
        committed_session.add(Order(order_id=order_id, order_date=batch, customer_ref="C-1", status="synced",
                                    created_at=created_at))
        committed_session.flush()
    committed_session.commit()

    # when the operator lists two, then all
    two = cli.run("orders", "list", "--status", "synced", "--limit", "2", DATABASE_URL=migrated_database_url)
    every = cli.run("orders", "list", "--status", "synced", DATABASE_URL=migrated_database_url)

    # then the oldest two come, and a line says two newer ones were left out, and how to see them
    assert [json.loads(line)["order_id"] for line in two.stdout.splitlines()] == ["ORD-A", "ORD-B"]
    assert two.stderr == "erp-sync: 2 more, newer; --limit 4 lists them all\n"
    # and all of them in order of arrival, with nothing said
    assert [json.loads(line)["order_id"] for line in every.stdout.splitlines()] == ["ORD-A", "ORD-B", "ORD-D", "ORD-C"]
    assert every.stderr == ""


def test_retry_with_the_broker_down_marks_nothing_due(committed_session, migrated_database_url, db_engine):
    # given an order waiting for its retry in an hour
    later = datetime.now(UTC) + timedelta(hours=1)
    committed_session.add(Order(order_id="ORD-LATER", order_date=datetime.now(UTC), customer_ref="C-1",
                                status="pending_sync", next_attempt_at=later))
    committed_session.commit()

    # when it is retried with the broker down
    result = cli.run("orders", "retry", "ORD-LATER", DATABASE_URL=migrated_database_url,
                     AMQP_URL="amqp://guest:guest@127.0.0.1:9/%2F")

    # then it failed before marking the order due: `orders list` still shows its next attempt
    assert result.returncode == 1
    committed_session.expire_all()
    assert committed_session.get(Order, "ORD-LATER").next_attempt_at == later


@pytest.mark.parametrize("action", ["show", "retry"])
def test_an_order_id_that_is_no_utf8_text_is_an_argument_error_not_a_traceback(action, migrated_database_url):
    # the shell passes the byte 0xff; Python holds it as a lone surrogate
    result = cli.run("orders", action, "ORD-\udcff", DATABASE_URL=migrated_database_url)

    assert result.returncode == 2 and "must be UTF-8 text" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_status_is_named_with_the_known_ones(migrated_database_url):
    result = cli.run("orders", "list", "--status", "lost", DATABASE_URL=migrated_database_url)

    assert result.returncode == 2
    assert "the statuses are received, synced, pending_sync, local_only, rejected" in result.stderr


@pytest.mark.parametrize("args", [("list",), ("show", "ORD-1"), ("retry", "ORD-1")])
def test_with_the_database_down_each_action_says_so_in_one_line(args):
    # given a DATABASE_URL where nothing listens
    result = cli.run("orders", *args, DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync")

    # then the command fails with one line naming the database, no traceback
    assert result.returncode == 1
    assert result.stderr.startswith("erp-sync: database unavailable") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_retry_with_the_broker_down_says_so_in_one_line(committed_session, migrated_database_url):
    # given an order waiting for its retry, and a broker where nothing listens
    committed_session.add(Order(order_id="ORD-WAITING", order_date=datetime.now(UTC), customer_ref="C-1",
                                status="pending_sync"))
    committed_session.commit()
    result = cli.run("orders", "retry", "ORD-WAITING", DATABASE_URL=migrated_database_url,
                     AMQP_URL="amqp://guest:guest@127.0.0.1:9/%2F")

    # then the command fails with one line naming the broker, no traceback
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("erp-sync: cannot connect to RabbitMQ") and "Connection refused" in result.stderr


@pytest.mark.parametrize("limit", ["-1", "0", "many"])
def test_a_limit_below_one_is_refused_before_the_database_is_asked(limit):
    # given a DATABASE_URL where nothing listens: had it been asked, the command would fail otherwise
    result = cli.run("orders", "list", "--limit", limit, DATABASE_URL="postgresql://postgres@127.0.0.1:9/erp_sync")

    # then argparse refused the argument, exit 2
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync orders list: error: argument --limit: must be a whole number from 1 to 2**63 - 1, not {limit!r}")


def test_retrying_more_orders_than_the_push_queue_has_room_for_pushes_none_and_says_why(
        broker, committed_session, db_engine, migrated_database_url):
    # given three waiting orders, and a push queue bounded at 4 that already holds 2 pushes
    later = datetime.now(UTC) + timedelta(hours=1)
    for n in range(3):
        committed_session.add(Order(order_id=f"ORD-R-{n}", order_date=datetime.now(UTC), customer_ref="C-1",
                                    status="pending_sync", next_attempt_at=later))
    committed_session.commit()
    publisher = ConfirmingPublisher(broker)
    try:
        publisher.publish_all([push_message("ORD-R-0"), push_message("ORD-R-1")])
    finally:
        publisher.close()
    env = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker}

    # when the operator pushes all of them now, under that bound, then under the default one
    refused = cli.run("orders", "retry", "--all", QUEUE_MAX_LENGTH="4", **env)
    with db_engine.connect() as connection:
        untouched = {order_id: due for order_id, due in connection.execute(
            text("SELECT order_id, next_attempt_at FROM orders"))}
    queued_then = queue_depths(broker, [ORDERS_PUSH_QUEUE.name])[ORDERS_PUSH_QUEUE.name]
    pushed = cli.run("orders", "retry", "--all", **env)

    # then the first pushed none, marked none due and said why; the second pushed each
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        "erp-sync: 3 orders to push, but erp-sync.orders-push has room for 2 (2 queued, QUEUE_MAX_LENGTH 4); "
        "nothing was pushed: let the orders worker drain it (its pushes may be these orders already), or name "
        "fewer\n")
    assert all(due == later for due in untouched.values()) and queued_then == 2
    assert pushed.returncode == 0 and pushed.stdout == "pushing ORD-R-0\npushing ORD-R-1\npushing ORD-R-2\n"
