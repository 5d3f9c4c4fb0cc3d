"""SIGTERM to every kind of erp-sync process mid-stream: it exits within its bound, and nothing is lost or half applied.

Each process runs as production runs it (`erp-sync worker NAME`, `erp-sync ingress`, `erp-sync api`).
The grace deadline below plays the orchestrator's grace period: generous, a functional bound, not a speed target.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests
from sqlalchemy import text

from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support import cli
from tests.support.amqp import drain
from tests.support.factories import catalog_event, encode, inventory_event, now_iso, signed_headers, variant_with
from tests.support.orders import order
from tests.support.processes import Process
from tests.support.settings import API_TOKEN, WEBHOOK_SECRET
from tests.support.waiting import wait_for

STOP_BOUND_S = 8.0  # WORKER_STOP_TIMEOUT_S of these processes
GRACE_S = 40.0  # the orchestrator's grace period: a stop later than this would be a SIGKILL


def publish_events(amqp_url: str, events: list[dict]) -> None:
    """Put events on erp.events as the ingress does once it has answered 202."""
    publisher = ConfirmingPublisher(amqp_url)
    try:
        publisher.publish_all([OutgoingMessage(EVENTS_EXCHANGE, e["event_type"], encode(e), message_id=e["event_id"])
                               for e in events])
    finally:
        publisher.close()


def count(db_engine, sql: str, **params) -> int:
    with db_engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def outcomes(db_engine) -> dict[str, int]:
    """How many stock figures were recorded with each outcome (applied, stale, duplicate)."""
    with db_engine.connect() as connection:
        return dict(connection.execute(text("SELECT outcome, count(*) FROM stock_changes GROUP BY 1")).tuples().all())


def stock_stream(prefix: str, skus: int, figures: int) -> list[dict]:
    """Figures for each SKU, one a minute, newest last per SKU, interleaved across SKUs."""
    events = []
    for minute in range(figures):
        for n in range(skus):
            event = inventory_event(sku=f"{prefix}-{n}", new_quantity=minute + n)
            event["timestamp"] = now_iso(timedelta(minutes=minute - figures - 5))
            events.append(event)
    return events


def catalog_stream(prefix: str, groups: int, image_base: str | None = None) -> list[dict]:
    events = []
    for n in range(groups):
        variants = [variant_with(sku=f"{prefix}-{n}-{v}", display_name=f"{prefix} {n}/{v}", price=100.0 + v,
                                 media=[{"url": f"{image_base or 'https://erp-cdn.com'}/slow.png?{prefix}-{n}-{v}",
                                         "is_main": True}])
                    for v in range(3)]
        events.append(catalog_event(product_group_id=f"{prefix}-G{n}", group_name=f"{prefix} group {n}",
                                    variants=variants))
    return events


def stopped_in_time(process: Process) -> float:
    """SIGTERM the process; insist it exits cleanly (status 0) before the grace deadline; the seconds it took."""
    status, taken = process.terminate(GRACE_S)
    assert status == 0, f"{process.args} exited with {status} after {taken:.1f} s:\n{process.output()[-3000:]}"
    return taken


@pytest.fixture
def processes(committed_session):
    # Set up after the session, so torn down before it empties the tables: a process still
    # running then could write into the next test's tables.
    started: list[Process] = []

    def start(settings, *args: str, **extra: str) -> Process:
        process = Process(settings, *args, **extra)
        started.append(process)
        return process

    yield start
    for process in started:
        print(f"--- {' '.join(process.args)}\n{process.output()[-4000:]}")  # shown when the test fails
        process.kill()


@pytest.fixture
def worker_settings(settings_factory):
    def build(**overrides):
        values = {"worker_stop_timeout_s": STOP_BOUND_S, "database_lock_timeout_ms": 500,
                  "worker_batch_size": 5, "worker_prefetch": 10, **overrides}
        return settings_factory(**values)
    return build


def test_inventory_worker_stopped_mid_stream_applies_every_figure_exactly_once_after_restart(
        broker, worker_settings, processes, db_engine, committed_session):
    # given 1,500 stock figures waiting and an inventory worker taking them 5 at a time
    events = stock_stream("SKU-STOP", skus=50, figures=30)
    publish_events(broker, events)
    settings = worker_settings()
    worker = processes(settings, "worker", "inventory")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM stock_changes") >= 100, timeout=30)

    # when it gets SIGTERM mid-stream
    stopped_in_time(worker)
    at_stop = count(db_engine, "SELECT count(*) FROM stock_changes WHERE outcome <> 'duplicate'")

    # then it stopped before the end, and a new worker brings every figure in exactly once
    assert at_stop < len(events)
    processes(settings, "worker", "inventory")
    first_time = "SELECT count(*) FROM stock_changes WHERE outcome <> 'duplicate'"
    try:
        wait_for(lambda: count(db_engine, first_time) >= len(events), timeout=60)
    except AssertionError:
        pytest.fail(f"figures by outcome {outcomes(db_engine)}; parked {len(drain(broker, 'erp-sync.inventory.parked'))}")
    assert count(db_engine, first_time) == len(events), outcomes(db_engine)
    assert count(db_engine, "SELECT count(DISTINCT event_id) FROM stock_changes WHERE outcome <> 'duplicate'") \
        == len(events)
    assert count(db_engine, "SELECT count(*) FROM stock_levels WHERE erp_quantity = 29 + "
                            "CAST(split_part(sku, '-', 3) AS int)") == 50
    assert drain(broker, "erp-sync.inventory.parked") == []


def test_catalog_worker_stopped_mid_stream_leaves_no_group_half_applied(
        broker, worker_settings, processes, db_engine, committed_session):
    # given 300 product groups of 3 variants waiting for the catalog worker
    events = catalog_stream("STOP", groups=300)
    publish_events(broker, events)
    settings = worker_settings()
    worker = processes(settings, "worker", "catalog")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM product_groups") >= 20, timeout=30)

    # when it gets SIGTERM mid-stream
    stopped_in_time(worker)

    # then every group it applied has all three variants (none half applied), it stopped before the end,
    # and a new worker brings in the rest
    assert count(db_engine, "SELECT count(*) FROM product_groups") < len(events)
    assert count(db_engine, "SELECT count(*) FROM (SELECT product_group_id FROM variants GROUP BY 1 "
                            "HAVING count(*) <> 3) AS partial") == 0
    processes(settings, "worker", "catalog")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM variants") == 3 * len(events), timeout=60)
    assert count(db_engine, "SELECT count(*) FROM processed_events WHERE event_type = 'catalog.update'") == len(events)
    assert drain(broker, "erp-sync.catalog.parked") == []


def test_media_worker_stopped_mid_download_confirms_every_picture_after_restart(
        broker, worker_settings, processes, db_engine, committed_session, image_server, start_workers):
    # given 3 groups of 3 pictures, each taking over a second to download, queued by the catalog worker
    settings = worker_settings(media_allow_private_networks=True, media_timeout_s=5)
    start_workers("catalog", with_settings=settings)
    publish_events(broker, catalog_stream("MEDIA", groups=3, image_base=image_server.base))
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM media") == 9, timeout=30)
    worker = processes(settings, "worker", "media")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM media WHERE status = 'confirmed'") >= 1, timeout=30)
    # downloading at a lower CPU priority than the workers the shop's data comes from (MEDIA_NICE, 10)
    assert os.getpriority(os.PRIO_PROCESS, worker.process.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)

    # when it gets SIGTERM while downloading
    stopped_in_time(worker)

    # then a new worker confirms every picture, none failed or parked
    assert count(db_engine, "SELECT count(*) FROM media WHERE status = 'confirmed'") < 9
    processes(settings, "worker", "media")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM media WHERE status = 'confirmed'") == 9, timeout=60)
    assert drain(broker, "erp-sync.media.parked") == []


def test_orders_worker_stopped_while_the_erp_hangs_exits_in_time_and_every_order_reaches_the_erp_once(
        storefront, order_settings, sandbox, processes, db_engine, committed_session):
    # given an ERP that takes 10 s to answer (beyond the 2 s read timeout) and 12 orders placed
    sandbox.fault("slow", delay_ms=10_000)
    settings = order_settings(worker_stop_timeout_s=STOP_BOUND_S, erp_read_timeout_s=2, order_push_concurrency=2)
    order_ids = [f"ORD-HANG-{n}" for n in range(12)]
    for order_id in order_ids:
        publish_order(storefront, order(order_id, quantity=1))
    worker = processes(settings, "worker", "orders")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM orders") >= 1, timeout=30)

    # when it gets SIGTERM while its pushes hang
    stopped_in_time(worker)

    # then, once the ERP answers again, a new worker takes every order to the ERP exactly once
    sandbox.fault("none")
    processes(settings, "worker", "orders")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM orders WHERE status = 'synced'") == len(order_ids),
             timeout=60)
    in_erp = [o["order_id"] for o in sandbox.orders()]
    assert sorted(in_erp) == sorted(order_ids)


def test_inventory_worker_waiting_on_a_row_lock_stops_within_lock_timeout_and_the_figure_lands_later(
        broker, worker_settings, processes, db_engine, committed_session):
    # given a SKU whose row someone else holds locked
    settings = worker_settings(database_lock_timeout_ms=3_000)
    worker = processes(settings, "worker", "inventory")
    publish_events(broker, stock_stream("SKU-LOCK", skus=1, figures=1))
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM stock_levels") == 1, timeout=30)
    with db_engine.connect() as holder:
        holder.execute(text("SELECT * FROM stock_levels WHERE sku = 'SKU-LOCK-0' FOR UPDATE"))
        late = inventory_event(sku="SKU-LOCK-0", new_quantity=77)
        publish_events(broker, [late])
        wait_for(lambda: count(db_engine, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()") == 1, timeout=10, interval=0.02)

        # when the worker, waiting on that lock, gets SIGTERM
        stopped_in_time(worker)
        holder.rollback()

    # then the figure was not lost: a new worker applies it
    processes(settings, "worker", "inventory")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM stock_levels WHERE erp_quantity = 77") == 1, timeout=30)


def test_worker_stuck_past_its_stop_bound_exits_anyway_and_its_message_is_redelivered(
        broker, worker_settings, processes, db_engine, committed_session):
    # given an inventory worker allowed to wait 60 s on a row lock but only 2 s to stop
    settings = worker_settings(database_lock_timeout_ms=60_000, worker_stop_timeout_s=2)
    worker = processes(settings, "worker", "inventory")
    publish_events(broker, stock_stream("SKU-STUCK", skus=1, figures=1))
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM stock_levels") == 1, timeout=30)
    with db_engine.connect() as holder:
        holder.execute(text("SELECT * FROM stock_levels WHERE sku = 'SKU-STUCK-0' FOR UPDATE"))
        publish_events(broker, [inventory_event(sku="SKU-STUCK-0", new_quantity=55)])
        wait_for(lambda: count(db_engine, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                          "AND datname = current_database()") == 1, timeout=10, interval=0.02)

        # when it gets SIGTERM while waiting on that lock
        status, taken = worker.terminate(GRACE_S)
        holder.rollback()

    # then it exits on its bound, saying so, long before the lock would have let it go
    assert status == 1, worker.output()[-3000:]
    assert taken < GRACE_S
    assert "WORKER_STOP_TIMEOUT_S" in worker.output()
    # and the figure it had in hand comes back to a new worker
    processes(settings, "worker", "inventory")
    wait_for(lambda: count(db_engine, "SELECT count(*) FROM stock_levels WHERE erp_quantity = 55") == 1, timeout=30)


def test_reconcile_worker_stops_on_sigterm(order_settings, processes):
    # given the reconcile worker waiting for its next slot
    worker = processes(order_settings(worker_stop_timeout_s=STOP_BOUND_S), "worker", "reconcile")
    wait_for(lambda: "next sweep at" in worker.output(), timeout=30)

    # when it gets SIGTERM, then it exits cleanly in time
    stopped_in_time(worker)


def post_raw(port: int, event: dict) -> int:
    body = encode(event)
    return requests.post(f"http://127.0.0.1:{port}/webhooks/erp", data=body,
                         headers=signed_headers(body, WEBHOOK_SECRET), timeout=10).status_code


def test_ingress_stopped_mid_stream_has_queued_every_event_it_answered_202(broker, settings, processes):
    # given the ingress answering a stream of webhooks
    port = cli.free_port()
    door = processes(settings, "ingress", "--port", str(port))
    cli.wait_for_port(port, door.process)
    accepted = [event["event_id"] for event in stock_stream("SKU-DOOR", skus=5, figures=10)
                if post_raw(port, event) == 202]

    # when it gets SIGTERM, then it exits cleanly in time, and every event it accepted is on the queue
    stopped_in_time(door)
    assert len(accepted) == 50
    queued = [json.loads(m.body)["event_id"] for m in drain(broker, "erp-sync.inventory")]
    assert sorted(queued) == sorted(accepted)


def test_api_stops_on_sigterm(settings, processes):
    port = cli.free_port()
    api = processes(settings, "api", "--port", str(port))
    cli.wait_for_port(port, api.process)
    answer = requests.get(f"http://127.0.0.1:{port}/api/v1/inventory/NONE",
                          headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    assert answer.status_code == 404
    stopped_in_time(api)


def run_to_the_end(processes, settings, name: str, workers: int, done: Callable[[], bool]) -> None:
    """`workers` processes of one worker on its queue until `done`, then SIGTERM to all, each exiting cleanly."""
    group = [processes(settings, "worker", name) for _ in range(workers)]
    # Every one consuming before the stop: one still starting up when SIGTERM comes dies of it.
    for process in group:
        wait_for(lambda process=process: "consuming erp-sync." in process.output(), timeout=60)
    wait_for(done, timeout=90, interval=0.2)
    for process in group:
        process.process.send_signal(15)
    for process in group:
        assert process.process.wait(timeout=GRACE_S) == 0, process.output()[-3000:]


def shuffled_with_replays(events: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    mixed = events + rng.sample(events, len(events) // 5)
    rng.shuffle(mixed)
    return mixed


def catalog_versions(prefix: str, groups: int, versions: int) -> list[dict]:
    events = []
    for version in range(versions):
        for event in catalog_stream(prefix, groups):
            for variant in event["data"]["variants"]:
                variant["price"] = 1000.0 + version
            event["timestamp"] = now_iso(timedelta(minutes=version - versions - 5))
            events.append(event)
    return events


# Per worker: the events (a prefix apart per run), the count that says all are applied, and the
# end state one worker reaches, as (query, count) pairs.
SAME_STATE_CASES = {
    "inventory": (lambda prefix: stock_stream(f"SKU-{prefix}", skus=20, figures=20),
                  "SELECT count(DISTINCT event_id) FROM stock_changes WHERE outcome <> 'duplicate'",
                  # each SKU holds its newest figure, each event counted once
                  [("SELECT count(*) FROM stock_changes WHERE outcome <> 'duplicate'", 400),
                   ("SELECT count(*) FROM stock_levels WHERE erp_quantity = 19 + CAST(split_part(sku, '-', 3) AS int)", 20)]),
    "catalog": (lambda prefix: catalog_versions(prefix, groups=30, versions=5),
                "SELECT count(*) FROM processed_events WHERE event_type = 'catalog.update'",
                # every variant holds the newest version's price
                [("SELECT count(*) FROM variants WHERE price = 1004", 90),
                 ("SELECT count(*) FROM variants", 90)]),
}


# The state one worker reaches is the one the input dictates (newest figure, newest price, each order
# once), which the single-worker tests above reach; two and four must end there too.
@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("name", sorted(SAME_STATE_CASES))
def test_stock_and_catalog_workers_two_or_four_end_in_the_same_state(
        name, workers, broker, worker_settings, processes, db_engine, committed_session):
    # given 400 figures for 20 SKUs, or 5 versions of 30 groups, in random order, a fifth sent twice
    make_events, applied, end_state = SAME_STATE_CASES[name]
    events = make_events(f"N{workers}")
    publish_events(broker, shuffled_with_replays(events, seed=workers))

    # when 2 or 4 workers take them from one queue
    run_to_the_end(processes, worker_settings(), name, workers, lambda: count(db_engine, applied) == len(events))

    # then they end where one does
    assert [(query, count(db_engine, query)) for query, _ in end_state] == end_state


# The state one worker reaches is the one the input dictates (newest figure, newest price, each order
# once), which the single-worker tests above reach; two and four must end there too.
@pytest.mark.parametrize("workers", [2, 4])
def test_orders_workers_two_or_four_end_in_the_same_state(
        workers, storefront, order_settings, sandbox, processes, db_engine, committed_session):
    # given 16 orders placed, a quarter of them placed twice
    order_ids = [f"ORD-N{workers}-{n}" for n in range(16)]
    for order_id in order_ids + order_ids[:4]:
        publish_order(storefront, order(order_id, quantity=1))

    # when 2 or 4 orders workers take them from one queue
    synced = "SELECT count(*) FROM orders WHERE status = 'synced'"
    run_to_the_end(processes, order_settings(worker_stop_timeout_s=STOP_BOUND_S), "orders", workers,
                   lambda: count(db_engine, synced) == len(order_ids))

    # then, as with one, every order is in the ERP exactly once and its stock taken once
    in_erp = [o["order_id"] for o in sandbox.orders()]
    assert sorted(in_erp) == sorted(order_ids)
    assert sandbox.stock("IPH15-128-BLK") == 50 - len(order_ids)
