"""What the idempotency window costs: pruning its records, and checking an event's date on the hot path.

Fills a private database with `--records` idempotency records of events dated before the window
and as many within it, prunes them as the reconcile worker does (a batch of 10,000 a transaction, oldest first), then
fills the same again and deletes them in one statement (the baseline: what a hand-written purge
would do, holding every deleted row's lock until it commits). Then times the workers' date check
against decoding the same `inventory.change` bodies (the baseline: what a worker spends on every
event before applying it). One JSON line goes to stdout:

    .venv/bin/python -m bench.prune [--records 1000000] [--events 100000]
"""
from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.harness import benchmark_main
from bench.options import numbers_arguments
from bench.report import machine, ratio
from bench.sandbox import private_database
from erp_sync.shared.pg import conninfo
from erp_sync.shared.settings import load_settings
from erp_sync.workers.idempotency_window import IdempotencyWindow, prune_processed_events
from erp_sync.workers.inventory import decode_inventory_change

FILL = """
INSERT INTO processed_events (event_id, event_type, body_digest, processed_at, dated)
SELECT %(prefix)s || n, 'inventory.change', sha256(n::text::bytea), now() - %(age)s, now() - %(age)s
  FROM generate_series(1, %(records)s) AS n"""
DELETE_AT_ONCE = "DELETE FROM processed_events WHERE dated < %(cutoff)s"
PAST_THE_WINDOW = timedelta(days=90)


def fill(database_url: str, records: int) -> None:
    """`records` records past the window and as many within it, then VACUUM ANALYZE as a live table would have."""
    with psycopg.connect(conninfo(database_url), autocommit=True) as conn:
        for age in (PAST_THE_WINDOW, timedelta(days=1)):
            conn.execute(FILL, {"prefix": f"evt-{uuid.uuid4().hex[:8]}-", "age": age, "records": records})
        conn.execute("VACUUM ANALYZE processed_events")


def remaining(database_url: str) -> int:
    with psycopg.connect(conninfo(database_url)) as conn:
        row = conn.execute("SELECT count(*) FROM processed_events").fetchone()
        return int(row[0]) if row else 0


def pruned_in_batches(database_url: str) -> tuple[int, float]:
    settings = load_settings(database_url=database_url)
    started = time.perf_counter()
    pruned = prune_processed_events(settings)
    return pruned, time.perf_counter() - started


def deleted_at_once(database_url: str) -> float:
    cutoff = IdempotencyWindow.of(load_settings()).dated_cutoff(datetime.now(UTC))
    started = time.perf_counter()
    with psycopg.connect(conninfo(database_url)) as conn:
        conn.execute(DELETE_AT_ONCE, {"cutoff": cutoff})
    return time.perf_counter() - started


def date_check_us(events: int) -> tuple[float, float]:
    """Microseconds an event: the window's check over a batch, and decoding its body (the baseline)."""
    body = json.dumps({"event_id": "evt-1", "event_type": "inventory.change",
                       "timestamp": datetime.now(UTC).isoformat(),
                       "data": {"sku": "SKU-1", "new_quantity": 5}}).encode()
    started = time.process_time()
    decoded = [decode_inventory_change(body) for _ in range(events)]
    decode_s = time.process_time() - started
    window = IdempotencyWindow.of(load_settings())
    started = time.process_time()
    for at in range(0, events, 100):
        window.admit_all(decoded[at:at + 100])
    check_s = time.process_time() - started
    return check_s / events * 1e6, decode_s / events * 1e6


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_start = os.getloadavg()
    with private_database(load_settings().database_url) as database_url:
        fill(database_url, args.records)
        pruned, batches_s = pruned_in_batches(database_url)
        kept = remaining(database_url)
        fill(database_url, args.records)
        at_once_s = deleted_at_once(database_url)
    if pruned != args.records or kept != args.records:
        raise RuntimeError(f"pruned {pruned} and kept {kept} of {args.records} old and {args.records} young records")
    check_us, decode_us = date_check_us(args.events)
    return {"benchmark": "prune", "at": datetime.now(UTC).isoformat(timespec="seconds"), "records": args.records,
            "prune_batches_s": round(batches_s, 2), "delete_at_once_s": round(at_once_s, 2),
            "prune_ratio_to_at_once": ratio(batches_s, at_once_s),
            "prune_records_per_s": round(pruned / batches_s),
            "date_check_us_per_event": round(check_us, 3), "decode_us_per_event": round(decode_us, 3),
            "date_check_ratio_to_decode": ratio(check_us, decode_us)} | machine((load_start, os.getloadavg()))


parse_args = numbers_arguments(__doc__.splitlines()[0], [
    ("--records", 1_000_000, "records of events dated before the window, and as many within"),
    ("--events", 100_000, "events whose date is checked"),
])


main = benchmark_main(parse_args, run, compared=["prune_batches_s", "date_check_us_per_event"])

if __name__ == "__main__":
    raise SystemExit(main(None))
