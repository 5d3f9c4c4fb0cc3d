"""The soak: the whole system on this machine under load and faults, then a check that nothing was lost or doubled.

Starts the sandbox ERP, `erp-sync migrate`, the ingress, the API and every worker on a private
database and vhost. For --duration the ERP makes in-store sales, goods receipts and price changes
(--events-per-s, each firing its webhook), the storefront orders what the API shows as available
(--orders-per-s, published to commerce.orders), and every --fault-every seconds a fault strikes:
a process SIGKILLed and restarted, every broker connection of the vhost closed, every database
backend of the database terminated, the ERP down, answering 503, hanging or losing its answers.
Then faults stop, the queues drain, and one JSON line goes to stdout (progress to stderr):

    .venv/bin/python -m bench.soak [--duration 600] [--events-per-s 200] [--orders-per-s 20] [--baseline FILE]

`lost` and `doubled` must be 0; `ok` says whether every invariant held.
"""
from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from bench import soak_checks
from bench.drain import bench_engine
from bench.harness import SERVICE_FAILURES, benchmark_main
from bench.order_erp import migrate, sandbox_env
from bench.order_load import write_catalog
from bench.phases import progress
from bench.sandbox import private_database, private_vhost
from bench.servers import HOST, erp_sync, free_port, running, server_env
from bench.soak_faults import HANG_MS, FaultSchedule
from bench.soak_load import ErpActivity, Storefront, paced
from bench.soak_system import System
from erp_sync.shared.settings import load_settings

COMPARED = ("events_per_s", "orders_per_s", "lost", "doubled")
# Settings of the soak's processes: short retry paths, so what the faults delay lands within the drain.
SOAK_SETTINGS = {
    "ERP_CONNECT_TIMEOUT_S": "1", "ERP_READ_TIMEOUT_S": "3", "ERP_QUICK_RETRIES": "2",
    "ORDER_RETRY_INTERVAL_S": "2", "ORDER_RETRY_WINDOW_S": "30", "ERP_PROBE_INTERVAL_S": "1",
    "RETRY_DELAYS_MS": "200,1000,3000", "MAX_DELIVERY_ATTEMPTS": "100", "WORKER_STOP_TIMEOUT_S": "10",
    "MEDIA_ALLOW_PRIVATE_NETWORKS": "true", "RECONCILE_SCHEDULE": "0 0 29 2 *", "LOG_LEVEL": "WARNING",
    "PUBLISH_CONFIRM_TIMEOUT_S": "5", "UNAVAILABLE_RETRY_AFTER_S": "1",
}
# ERP operations under way at once: each waits on the sandbox's single process.
ERP_THREADS = 48
# Webhooks the ERP posts at once: one after another, 200 a second would not get through.
WEBHOOK_CONCURRENCY = 16
# The hanging ERP answers late: its late work must be in before the check.
QUIET_AFTER_FAULTS_S = HANG_MS / 1000 + 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Soak the whole system under load and faults.")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load and faults (600)")
    parser.add_argument("--events-per-s", type=float, default=200.0, help="ERP stock and price changes a second (200)")
    parser.add_argument("--orders-per-s", type=float, default=20.0, help="storefront orders tried a second (20)")
    parser.add_argument("--skus", type=int, default=200, help="SKUs in the ERP's catalog (200)")
    parser.add_argument("--stock", type=int, default=20, help="each SKU's stock at the start (20)")
    parser.add_argument("--fault-every", type=float, default=8.0, help="seconds between faults (8)")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="give the drain up after (300 s)")
    parser.add_argument("--log-dir", type=Path, help="keep every process's log here (default: removed after the run)")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    token, secret = secrets.token_hex(16), secrets.token_hex(24)
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-soak-")))
        skus = write_catalog(work_dir / "catalog.json", args.skus, args.stock)
        erp_port, ingress_port, api_port = free_port(), free_port(), free_port()
        log_dir = args.log_dir or work_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        erp_url, erp_db = f"http://{HOST}:{erp_port}", work_dir / "erp.sqlite3"
        amqp_url = stack.enter_context(private_vhost(base.amqp_url, base.retry_delays_ms))
        database_url = stack.enter_context(private_database(base.database_url))
        settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_base_url=erp_url,
                                 erp_api_token=token)
        env = server_env(settings, secret, work_dir / "metrics") | SOAK_SETTINGS | {
            "ERP_BASE_URL": erp_url, "ERP_API_TOKEN": token}
        migrate(env)
        erp_env = sandbox_env(work_dir / "catalog.json", token) | {
            "SANDBOX_ERP_DATABASE": str(erp_db), "SANDBOX_ERP_WEBHOOK_URL": f"http://{HOST}:{ingress_port}/webhooks/erp",
            "SANDBOX_ERP_WEBHOOK_SECRET": secret, "SANDBOX_ERP_TIME_SCALE": "0.01",
            "SANDBOX_ERP_TIMESTAMP_PRECISION": "ms", "SANDBOX_ERP_PUBLIC_URL": erp_url,
            "SANDBOX_ERP_WEBHOOK_CONCURRENCY": str(WEBHOOK_CONCURRENCY)}
        stack.enter_context(running("sandbox-erp", erp_sync("sandbox-erp", "--port", str(erp_port)), erp_env,
                                    erp_port, log_dir))
        system = System.build(env, log_dir, ingress_port, api_port)
        stack.callback(system.stop_all)
        system.start_all()
        engine = bench_engine(database_url)
        stack.callback(engine.dispose)
        erp = ErpActivity(erp_url, token, skus)
        initial = _seed(erp, engine, skus, args.stock)
        storefront = Storefront(f"http://{HOST}:{api_port}", secret, amqp_url, skus)
        stack.callback(storefront.close)
        faults = FaultSchedule(system, amqp_url, engine, erp_url, token, args.fault_every)

        progress(f"load for {args.duration:.0f} s: {args.events_per_s}/s ERP events, {args.orders_per_s}/s orders, "
                 f"a fault every {args.fault_every} s")
        # Processes started from a thread die with that thread (bench/servers.py): the fault and
        # supervisor threads stay until the check is done.
        load_stop, end = threading.Event(), threading.Event()
        load = [threading.Thread(target=paced, args=(args.events_per_s, load_stop, erp.act, ERP_THREADS)),
                threading.Thread(target=paced, args=(args.orders_per_s, load_stop, storefront.act))]
        keepers = [threading.Thread(target=faults.run, args=(load_stop, end)),
                   threading.Thread(target=system.supervise, args=(end,))]
        stack.callback(_join, keepers, end)
        for thread in load + keepers:
            thread.start()
        try:
            load_stop.wait(args.duration)
        finally:
            load_stop.set()
            for thread in load:
                thread.join()
            faults.finished.wait()
        progress(f"load stopped; faults: {dict(faults.counts)}; draining")
        drain_s, outstanding = _drain(engine, erp_db, amqp_url, args.drain_timeout)
        result = soak_checks.verdict(engine, erp_db, amqp_url, set(storefront.placed),
                                     None if erp.uncertain else erp.moves, initial)
    return _figures(args, erp, storefront, faults, system, drain_s, outstanding, result)


def _join(threads: list[threading.Thread], end: threading.Event) -> None:
    end.set()
    for thread in threads:
        thread.join()


def _seed(erp: ErpActivity, engine: Any, skus: list[str], stock: int) -> dict[str, int]:
    """A count of every SKU and a price change of every group in the ERP, and the shop showing them all."""
    for sku in skus:
        erp.set_stock(sku, stock)
    for sku in skus[::5]:
        erp.touch_group(sku)
    deadline = time.monotonic() + 120
    with engine.connect() as connection:
        while time.monotonic() < deadline:
            levels = connection.execute(text("SELECT count(*) FROM stock_levels")).scalar_one()
            variants = connection.execute(text("SELECT count(*) FROM variants")).scalar_one()
            if levels >= len(skus) and variants >= len(skus):
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the shop did not learn the {len(skus)} SKUs within 120 s")
    erp.counts.clear()
    return {sku: stock for sku in skus}


def _drain(engine: Any, erp_db: Path, amqp_url: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
    """Wait until no webhook is pending, every queue is empty and every order settled, three checks running.

    Returns the seconds waited and what was still outstanding at the last check (empty once drained).
    """
    started = time.monotonic()
    time.sleep(QUIET_AFTER_FAULTS_S)
    calm = 0
    outstanding: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s:
        outstanding = soak_checks.outstanding(engine, erp_db, amqp_url)
        calm = 0 if outstanding else calm + 1
        if calm >= 3:
            break
        time.sleep(1.0)
    return round(time.monotonic() - started, 1), outstanding


def _figures(args: argparse.Namespace, erp: ErpActivity, storefront: Storefront, faults: FaultSchedule,
             system: System, drain_s: float, outstanding: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    drained = not outstanding
    events = sum(n for kind, n in erp.counts.items() if kind in ("sale", "receipt", "price"))
    figures: dict[str, Any] = {
        "benchmark": "soak", "date": datetime.now(UTC).date().isoformat(), "duration_s": args.duration,
        "events_per_s_target": args.events_per_s, "events_per_s": round(events / args.duration, 1),
        "orders_per_s_target": args.orders_per_s, "orders_per_s": round(len(storefront.placed) / args.duration, 1),
        "erp_events": dict(erp.counts), "storefront": dict(storefront.counts),
        "faults": dict(faults.counts), "fault_failures": faults.failures,
        "unplanned_restarts": dict(system.unplanned_restarts),
        "failed_starts": dict(system.failed_starts), "drained": drained, "drain_s": drain_s,
        "outstanding_after_drain": outstanding,
        **result,
    }
    figures["ok"] = bool(
        drained and result["lost"] == 0 and result["doubled"] == 0 and result["unexplained_holds"] == 0
        and not result["parked"] and result["orders"]["rejected_without_reason"] == 0
        and storefront.counts["negative_available"] == 0 and not faults.failures)
    return figures


main = benchmark_main(parse_args, run, COMPARED, SERVICE_FAILURES + (requests.RequestException,))


if __name__ == "__main__":
    sys.exit(main())
