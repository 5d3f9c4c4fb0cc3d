"""What `erp-sync orders list` holds in memory against how many orders it lists.

Fills a private database with `--orders` synced orders (by SQL, as the orders worker would leave
them), then runs `erp-sync orders list --limit N` as a process for all of them and for one (the
baseline: what the command needs whatever it lists), its output discarded, and reads each one's peak
resident memory (`bench.peak_memory`). One JSON line goes to stdout:

    .venv/bin/python -m bench.orders_list [--orders 200000]
"""
from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.harness import benchmark_main
from bench.peak_memory import run_measured
from bench.report import machine, ratio
from bench.sandbox import private_database
from bench.servers import erp_sync
from erp_sync.shared.pg import conninfo
from erp_sync.shared.settings import load_settings

COMMAND_TIMEOUT_S = 600
FILL = """
INSERT INTO orders (order_id, order_date, customer_ref, status, attempts, synced_at, erp_received_at)
SELECT 'ORD-BENCH-' || lpad(n::text, 7, '0'), now(), 'C-' || (n %% 1000), 'synced', 1, now(), now()
  FROM generate_series(1, %(orders)s) AS n"""


def listed(database_url: str, limit: int) -> dict[str, float]:
    """`orders list --limit` run to its end, its output discarded: its peak memory (MiB) and seconds."""
    done = run_measured(erp_sync("orders", "list", "--limit", str(limit)), os.environ | {"DATABASE_URL": database_url},
                        COMMAND_TIMEOUT_S, keep_stdout=False)
    return {"rss_mb": done.peak_mb, "s": done.seconds}


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    with private_database(load_settings().database_url) as database_url:
        with psycopg.connect(conninfo(database_url)) as conn:
            conn.execute(FILL, {"orders": args.orders})
        one, every = listed(database_url, 1), listed(database_url, args.orders)
    return {"benchmark": "orders_list", "at": datetime.now(UTC).isoformat(timespec="seconds"), "orders": args.orders,
            "list_all_rss_mb": every["rss_mb"], "list_all_s": every["s"], "list_one_rss_mb": one["rss_mb"],
            "list_all_rss_ratio_to_one": ratio(every["rss_mb"], one["rss_mb"])} | machine((load_start, os.getloadavg()))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.orders_list", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000, help="synced orders in the database (200000)")
    parser.add_argument("--baseline", help="a JSON line of an earlier run, to print beside this one")
    return parser.parse_args(argv)


main = benchmark_main(parse_args, run, compared=["list_all_rss_mb", "list_all_s"])

if __name__ == "__main__":
    raise SystemExit(main(None))
