"""What /metrics costs the database with a long history, and what keeping the counts costs each order.

Fills a private database with `--orders` orders (almost all synced, as after months of trade) and
two holds each (ended but for the unsettled orders'), then:

- times a scrape of the database-read metrics (`erp_sync_orders`, the stock holds, the sweeps) as
  the ingress, the API and the orders worker serve them, against the baseline of the same run: the
  two scans that counted orders by status and ended holds by reason before migration 0021 (and,
  at the end, the one scrape that folds the changes the order lives below left);
- runs an order's life `--recorded` times inside the database (a PL/pgSQL loop, so that no client's
  time blurs it): the order inserted, its two holds, marked synced, the holds ended. In rounds
  alternately with the counting triggers on and off: microseconds an order with each, and the median
  of each round's difference.

One JSON line goes to stdout:

    .venv/bin/python -m bench.scrape [--orders 1000000] [--scrapes 20] [--recorded 3000] [--rounds 8]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, generate_latest

from bench.harness import benchmark_main
from bench.options import numbers_arguments
from bench.report import machine, ratio
from bench.sandbox import private_database
from erp_sync.shared.db import make_engine
from erp_sync.shared.order_metrics import order_collector
from erp_sync.shared.pg import conninfo
from erp_sync.shared.reconcile_metrics import reconcile_collector
from erp_sync.shared.row_counts import fold_row_counts
from erp_sync.shared.settings import load_settings

FILL_ORDERS = """
INSERT INTO orders (order_id, order_date, customer_ref, status, synced_at, created_at)
SELECT 'ORD-H-' || n, now(), 'CUST-' || n %% 1000,
       CASE WHEN n %% 1000 = 0 THEN 'pending_sync' WHEN n %% 1000 = 1 THEN 'received'
            WHEN n %% 100 = 2 THEN 'rejected' ELSE 'synced' END,
       now() - interval '1 day', now() - (%(orders)s - n) * interval '1 second'
  FROM generate_series(1, %(orders)s) AS n"""
FILL_HOLDS = """
INSERT INTO stock_holds (order_id, sku, quantity, held_at, released_at, release_reason)
SELECT order_id, 'SKU-' || (arrival * 2 + k) % 5000, 1, created_at,
       CASE WHEN status IN ('synced', 'rejected') THEN created_at + interval '1 minute' END,
       CASE status WHEN 'rejected' THEN 'rejected' WHEN 'synced' THEN
            CASE WHEN arrival % 10 = 0 THEN 'grace_period' ELSE 'erp_figure' END END
  FROM orders, generate_series(0, 1) AS k"""
# The scans /metrics made at each scrape before migration 0021 (the rest of a scrape is as it was).
SCANS_BEFORE = ("SELECT status, count(*) FROM orders GROUP BY status",
                "SELECT release_reason, count(*) FROM stock_holds WHERE released_at IS NOT NULL "
                "GROUP BY release_reason ORDER BY release_reason")
# What an order does to the counted tables in its life, `first` to `last`.
LIVES = """
DO $$
BEGIN
  FOR n IN {first}..{last} LOOP
    INSERT INTO orders (order_id, order_date, customer_ref) VALUES ('ORD-L-' || n, now(), 'CUST-L');
    INSERT INTO stock_holds (order_id, sku, quantity) VALUES ('ORD-L-' || n, 'SKU-1', 1), ('ORD-L-' || n, 'SKU-2', 1);
    UPDATE orders SET status = 'synced', synced_at = clock_timestamp() WHERE order_id = 'ORD-L-' || n;
    UPDATE stock_holds SET released_at = clock_timestamp(), release_reason = 'erp_figure' WHERE order_id = 'ORD-L-' || n;
  END LOOP;
END $$"""
COUNTING_TRIGGERS = {"orders": ("trg_orders_count_added", "trg_orders_count_removed", "trg_orders_count_changed"),
                     "stock_holds": ("trg_stock_holds_count_added", "trg_stock_holds_count_removed",
                                     "trg_stock_holds_count_changed")}


def fill(database_url: str, orders: int) -> None:
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute(FILL_ORDERS, {"orders": orders})
        conn.execute(FILL_HOLDS)
    # The fill's changes folded and vacuumed away, as a running system's scrapes and autovacuum keep them.
    fold_row_counts(database_url)
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def scrape_ms(database_url: str, scrapes: int) -> float:
    """Median wall milliseconds of a scrape of the database-read metrics."""
    engine = make_engine(database_url)
    try:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(order_collector(engine))
        registry.register(reconcile_collector(engine))
        with engine.connect():  # the pool's connection up, as a running process has it
            pass
        timings = []
        for _ in range(scrapes):
            started = time.perf_counter()
            text = generate_latest(registry).decode()
            timings.append((time.perf_counter() - started) * 1e3)
        if "erp_sync_order_metrics_up 1.0" not in text or 'erp_sync_orders{status="synced"} 0.0' in text:
            raise RuntimeError(f"the scrape did not read the orders:\n{text}")
        return statistics.median(timings)
    finally:
        engine.dispose()


def scans_before_ms(database_url: str, scrapes: int) -> float:
    """Median wall milliseconds of the two scans a scrape made before migration 0021."""
    with psycopg.connect(conninfo(database_url)) as conn:
        timings = []
        for _ in range(scrapes + 1):
            started = time.perf_counter()
            for scan in SCANS_BEFORE:
                conn.execute(scan).fetchall()
            timings.append((time.perf_counter() - started) * 1e3)
            conn.rollback()
        return statistics.median(timings[1:])


def lives_us(conn: psycopg.Connection[Any], first: int, orders: int, counted: bool) -> float:
    """Microseconds an order's life takes the database, with the counting triggers on or off."""
    for table, triggers in COUNTING_TRIGGERS.items():
        for trigger in triggers:
            conn.execute(f"ALTER TABLE {table} {'ENABLE' if counted else 'DISABLE'} TRIGGER {trigger}")
    started = time.perf_counter()
    conn.execute(LIVES.format(first=first, last=first + orders - 1))
    return (time.perf_counter() - started) / orders * 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    rounds: list[dict[str, float]] = []
    with private_database(load_settings().database_url) as database_url:
        fill(database_url, args.orders)
        scrape, before = scrape_ms(database_url, args.scrapes), scans_before_ms(database_url, args.scrapes)
        with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
            for number in range(args.rounds):
                figures = {}
                for on in (number % 2 == 0, number % 2 == 1):
                    first = (2 * number + on) * args.recorded
                    figures["counted" if on else "uncounted"] = lives_us(conn, first, args.recorded, on)
                rounds.append(figures)
                conn.execute("VACUUM ANALYZE orders, stock_holds")
            row = conn.execute("SELECT count(*) FROM row_count_changes").fetchone()
            pending = int(row[0]) if row else 0
        # The lives' changes, unfolded: the scrape that folds them (as after a burst between two scrapes).
        folding = scrape_ms(database_url, 1)
    counted = statistics.median(r["counted"] for r in rounds)
    uncounted = statistics.median(r["uncounted"] for r in rounds)
    extra = statistics.median(r["counted"] - r["uncounted"] for r in rounds)
    return {"benchmark": "scrape", "at": datetime.now(UTC).isoformat(timespec="seconds"), "orders": args.orders,
            "scrape_ms": round(scrape, 2), "scans_before_ms": round(before, 2),
            "scrape_ratio_to_scans_before": ratio(scrape, before),
            "changes_pending": pending, "scrape_folding_them_ms": round(folding, 2),
            "order_life_us_counted": round(counted, 1), "order_life_us_uncounted": round(uncounted, 1),
            "counting_us_per_order": round(extra, 1), "counting_ratio": ratio(counted, uncounted),
            "rounds": [{key: round(value, 1) for key, value in r.items()} for r in rounds]
            } | machine((load_start, os.getloadavg()))


parse_args = numbers_arguments(__doc__.splitlines()[0], [
    ("--orders", 1_000_000, "orders in the history (two holds each)"),
    ("--scrapes", 20, "scrapes timed (the median is given)"),
    ("--recorded", 3000, "order lives in each round, counted and not"),
    ("--rounds", 8, "rounds of order lives, counting on and off in turn"),
])


main = benchmark_main(parse_args, run, compared=["scrape_ms", "counting_us_per_order"])

if __name__ == "__main__":
    raise SystemExit(main(None))
