"""Orders by status and released holds by reason, kept as the rows change (migration 0021) and read without a scan."""
from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from erp_sync.shared.migrate import alembic_config, create_database_if_missing
from erp_sync.shared.row_counts import (
    ORDERS, STOCK_HOLDS_RELEASED, RecountHeldOff, drifted_counts, fold_row_counts, recount, row_counts,
)
from tests.support.services import database_not_yet_created, libpq_url
from tests.support.waiting import wait_for

STATUSES = ("received", "synced", "pending_sync", "local_only", "rejected")
REASONS = (None, "erp_figure", "grace_period", "rejected")
SKUS = ("SKU-RC-1", "SKU-RC-2")

COUNTED_ORDERS = "SELECT status, count(*) FROM orders GROUP BY status"
COUNTED_RELEASES = ("SELECT release_reason, count(*) FROM stock_holds WHERE release_reason IS NOT NULL "
                    "GROUP BY release_reason")


def as_counted(rows) -> dict[str, int]:
    return {str(key): int(n) for key, n in sorted(rows)}


def counted_by_scan(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    return (as_counted(conn.exec_driver_sql(COUNTED_ORDERS).all()),
            as_counted(conn.exec_driver_sql(COUNTED_RELEASES).all()))


def counted_as_kept(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    return row_counts(conn, ORDERS), row_counts(conn, STOCK_HOLDS_RELEASED)


def place(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    """Orders in one statement, each with a hold of each SKU (released for `reason`, open without)."""
    order_ids = [f"ORD-RC-{n}" for n in ids]
    conn.execute(text("INSERT INTO orders (order_id, order_date, customer_ref, status) "
                      "SELECT id, now(), 'CUST-RC', :status FROM unnest(CAST(:ids AS text[])) AS id "
                      "ON CONFLICT (order_id) DO NOTHING"), {"ids": order_ids, "status": status})
    conn.execute(text("INSERT INTO stock_holds (order_id, sku, quantity, released_at, release_reason) "
                      "SELECT o.order_id, sku, 1, CASE WHEN CAST(:reason AS text) IS NOT NULL THEN now() END, :reason "
                      "FROM orders o, unnest(CAST(:skus AS text[])) AS sku WHERE o.order_id = ANY(:ids)"),
                 {"ids": order_ids, "skus": list(SKUS), "reason": reason})


def restatus(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    conn.execute(text("UPDATE orders SET status = :status WHERE order_id = ANY(:ids)"),
                 {"ids": [f"ORD-RC-{n}" for n in ids], "status": status})


def release(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    """End (or, without a reason, reopen) the holds of these orders, as a release or an operator's hand would."""
    conn.execute(text("UPDATE stock_holds SET released_at = CASE WHEN CAST(:reason AS text) IS NOT NULL THEN now() END, "
                      "release_reason = :reason WHERE order_id = ANY(:ids)"),
                 {"ids": [f"ORD-RC-{n}" for n in ids], "reason": reason})


def delete(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    """Orders deleted by hand, their lines and holds with them (ON DELETE CASCADE)."""
    conn.execute(text("DELETE FROM orders WHERE order_id = ANY(:ids)"), {"ids": [f"ORD-RC-{n}" for n in ids]})


def fold(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    row_counts(conn, ORDERS)


def truncate(conn: Connection, ids: list[int], status: str, reason: str | None) -> None:
    conn.exec_driver_sql("TRUNCATE orders, order_lines, stock_holds")


STEPS: dict[str, Callable[[Connection, list[int], str, str | None], None]] = {
    "place": place, "restatus": restatus, "release": release, "delete": delete, "fold": fold, "truncate": truncate}
steps = st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.lists(st.integers(0, 12), max_size=6),
                           st.sampled_from(STATUSES), st.sampled_from(REASONS)), max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=steps)
def test_the_counts_are_those_a_scan_finds_whatever_the_changes(db_session, changes):
    # given orders and holds placed, restatused, released, reopened, deleted and truncated, with folds between
    conn = db_session.connection()
    example = conn.begin_nested()
    try:
        for name, ids, status, reason in changes:
            STEPS[name](conn, ids, status, reason)

        # when the counts are read
        kept = counted_as_kept(conn)

        # then they are what a scan of the tables counts, and read again (after the fold) the same
        assert kept == counted_by_scan(conn)
        assert counted_as_kept(conn) == kept
    finally:
        example.rollback()


def test_a_migrated_database_starts_from_the_counts_of_its_rows(database_url):
    # given orders and holds at revision 0020
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        command.upgrade(alembic_config(target), "0020")
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            conn.execute("INSERT INTO orders (order_id, order_date, customer_ref, status) "
                         "SELECT 'ORD-' || n, now(), 'C', (ARRAY['synced', 'received', 'rejected'])[n % 3 + 1] "
                         "FROM generate_series(1, 30) AS n")
            conn.execute("INSERT INTO stock_holds (order_id, sku, quantity, released_at, release_reason) "
                         "SELECT order_id, 'SKU-1', 1, CASE WHEN status <> 'received' THEN now() END, "
                         "CASE status WHEN 'synced' THEN 'erp_figure' WHEN 'rejected' THEN 'rejected' END FROM orders")

        # when it is migrated to 0021
        command.upgrade(alembic_config(target), "0021")

        # then the counts kept are those of the rows
        with psycopg.connect(libpq_url(target)) as conn:
            kept = as_counted(conn.execute("SELECT counted || ':' || key, n FROM row_counts").fetchall())
        assert kept == {"orders:received": 10, "orders:rejected": 10, "orders:synced": 10,
                        "stock_holds_released:erp_figure": 10, "stock_holds_released:rejected": 10}


def test_the_migration_gives_up_on_an_open_writer_and_runs_again_once_it_is_done(database_url):
    # given a database at 0020 and a transaction that wrote to orders and has not ended (an
    # operator's session left open, a batch that waits on something else)
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        command.upgrade(alembic_config(target), "0020")
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            conn.execute("INSERT INTO orders (order_id, order_date, customer_ref) VALUES ('ORD-HELD', now(), 'C')")
        with psycopg.connect(libpq_url(target)) as writer:
            writer.execute("UPDATE orders SET updated_at = now() WHERE order_id = 'ORD-HELD'")

            # when it is migrated meanwhile
            with pytest.raises(OperationalError, match="lock timeout"):
                command.upgrade(alembic_config(target), "0021")

            # then it stays at 0020, with nothing of 0021
            with psycopg.connect(libpq_url(target)) as conn:
                assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0020",)
                assert conn.execute("SELECT to_regclass('row_counts')").fetchone() == (None,)
            writer.rollback()

        # and once that transaction is done, it migrates, counting the order
        command.upgrade(alembic_config(target), "0021")
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT counted, key, n FROM row_counts").fetchall() == [("orders", "received", 1)]


def test_counts_read_while_writers_and_folds_commit_are_each_a_snapshot_of_the_rows(db_engine: Engine, committed_session):
    # given writers that place and restatus orders and release holds, each change in its own
    # transaction (some rolled back), while the reconcile worker's fold and two scrapes fold the
    # changes over and over
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            for n in range(first, first + 150):
                with db_engine.connect() as conn:
                    place(conn, [n], "received", None)
                    conn.commit()
                    restatus(conn, [n], STATUSES[n % 5], None)
                    release(conn, [n], "", REASONS[n % 4])
                    if n % 7:
                        conn.commit()
                    else:
                        conn.rollback()
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            failures.append(exc)

    def folder() -> None:
        try:
            while not stop.is_set():
                fold_row_counts(db_engine.url.render_as_string(hide_password=False))
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            failures.append(exc)

    def scraper() -> None:
        try:
            while not stop.is_set():
                with db_engine.begin() as conn:  # as /metrics reads, its fold committed
                    counted_as_kept(conn)
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(first,)) for first in (0, 1000, 2000)]
    folding = [threading.Thread(target=folder), threading.Thread(target=scraper), threading.Thread(target=scraper)]
    for thread in (*writers, *folding):
        thread.start()

    # when the counts are read meanwhile, each beside a scan in the same snapshot (REPEATABLE READ)
    mismatched: list[tuple[object, object]] = []
    reads = 0
    while any(thread.is_alive() for thread in writers):
        with db_engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            scanned = counted_by_scan(conn)
            try:
                kept = counted_as_kept(conn)
            except Exception as exc:  # noqa: BLE001
                # Its own fold may meet rows a fold committed since its snapshot: a serialization
                # failure, never a wrong count.
                assert "could not serialize" in str(exc)
                continue
            reads += 1
            if kept != scanned:
                mismatched.append((kept, scanned))
    stop.set()
    for thread in folding:
        thread.join()

    # then every read matched its snapshot's rows, and so do the counts at the end
    assert not failures
    assert reads > 0
    assert mismatched == []
    with db_engine.begin() as conn:
        assert counted_as_kept(conn) == counted_by_scan(conn)
        assert sum(counted_as_kept(conn)[0].values()) == 450


def test_a_truncate_while_a_fold_is_uncommitted_leaves_no_count_behind(db_engine: Engine, committed_session):
    # given an order whose count is not folded yet, and a scrape that folded it but has not committed
    with db_engine.begin() as conn:
        place(conn, [1], "rejected", "rejected")
    scrape = db_engine.connect()
    counted_as_kept(scrape)

    # when the tables are truncated meanwhile, and the scrape then commits
    truncating = threading.Thread(target=truncated, args=(db_engine,))
    truncating.start()
    wait_for(lambda: waiting_for_a_lock(db_engine), timeout=10)
    scrape.commit()
    scrape.close()
    truncating.join(10)

    # then nothing is counted, as nothing is there
    with db_engine.begin() as conn:
        assert counted_by_scan(conn) == ({}, {})
        assert counted_as_kept(conn) == ({}, {})


def truncated(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE orders, order_lines, stock_holds")


def waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND wait_event_type = 'Lock'").scalar_one())


def test_counts_a_load_with_the_triggers_off_left_behind_are_found_and_counted_again(db_engine: Engine,
                                                                                     committed_session):
    # given orders counted, then more loaded with the counting triggers off (as a data-only restore
    # does), while writers go on placing and syncing orders
    with db_engine.begin() as conn:
        place(conn, [1, 2], "synced", "erp_figure")
    with db_engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        place(conn, [3, 4, 5], "rejected", "rejected")
    url = db_engine.url.render_as_string(hide_password=False)

    # when the counts are checked (as the reconcile worker does after each slot)
    drifts = drifted_counts(url)

    # then both are found drifted, with what was kept and what the rows say
    assert [(d.counted, d.kept, d.scanned) for d in drifts] == [
        (ORDERS, {"synced": 2}, {"rejected": 3, "synced": 2}),
        (STOCK_HOLDS_RELEASED, {"erp_figure": 4}, {"erp_figure": 4, "rejected": 6})]

    # and counted again while writers place, sync and release, they end as the rows stand
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(first: int) -> None:
        try:
            n = first
            while not stop.is_set():
                with db_engine.begin() as conn:
                    place(conn, [n], "received", None)
                with db_engine.begin() as conn:
                    release(conn, [n], "", "erp_figure")
                    restatus(conn, [n], "synced", None)
                n += 1
        except BaseException as exc:  # noqa: BLE001 (handed to the test's thread)
            failures.append(exc)

    writers = [threading.Thread(target=writer, args=(first,)) for first in (100, 100_000)]
    for thread in writers:
        thread.start()
    try:
        for drift in drifts:
            recount(url, drift.counted)
    finally:
        stop.set()
        for thread in writers:
            thread.join()
    assert not failures
    assert drifted_counts(url) == []
    with db_engine.begin() as conn:
        assert counted_as_kept(conn) == counted_by_scan(conn)


def test_a_recount_a_writer_holds_off_gives_up_and_changes_nothing(db_engine: Engine, committed_session):
    # given drifted order counts and a transaction that wrote to orders and has not ended
    with db_engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        place(conn, [1], "synced", None)
    url = db_engine.url.render_as_string(hide_password=False)
    with db_engine.connect() as writer:
        place(writer, [2], "received", None)

        # when the orders are counted again meanwhile
        with pytest.raises(RecountHeldOff, match="a writer kept orders past 2s"):
            recount(url, ORDERS)
        writer.rollback()

    # then the counts are as they were, still drifted
    assert [(d.counted, d.kept, d.scanned) for d in drifted_counts(url)] == [(ORDERS, {}, {"synced": 1})]
