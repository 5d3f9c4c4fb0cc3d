"""The orders benchmark: orders a second pushed to the sandbox ERP by one and two workers, and publish-to-synced time.

Runs the sandbox ERP (a generated catalog, no webhooks) and `erp-sync migrate` on a private
database and vhost. Throughput phases pre-fill `commerce.orders` with confirmed `order.placed`
messages, start `erp-sync worker orders` processes and time them from their start until every
order is `synced`. The latency phase runs one worker and publishes orders at --rate. One JSON
line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.orders [--orders 4000] [--rate 100] [--duration 20] [--baseline FILE]
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import requests

from bench.drain import bench_engine
from bench.harness import SERVICE_FAILURES, quiet_logging, run_benchmark
from bench.options import load_parser
from bench.order_erp import erp_sync, migrate, sandbox_env
from bench.order_figures import figures
from bench.order_load import write_catalog
from bench.order_phases import Setup, latency, throughput
from bench.sandbox import private_database, private_vhost
from bench.servers import HOST, free_port, running, server_env
from erp_sync.shared.settings import load_settings

COMPARED = ("orders_1w_per_s", "orders_2w_per_s", "scaling", "publish_to_synced_p50_ms", "publish_to_synced_p99_ms")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = load_parser("Benchmark the orders worker against the sandbox ERP.", unit="orders", phase="latency",
                         rate=100.0, duration=20.0, warmup=2.0)
    parser.add_argument("--orders", type=int, default=4_000, help="orders pre-filled per throughput run (4000)")
    parser.add_argument("--skus", type=int, default=200, help="SKUs in the sandbox ERP's catalog (200)")
    parser.add_argument("--stock", type=int, default=1_000_000, help="stock of each SKU in the ERP (1000000)")
    parser.add_argument("--mode", choices=("orders", "adjust"), default="orders", help="ERP_ORDER_MODE (orders)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the ERP, vhost and database, run every phase, tear everything down; the figures."""
    base = load_settings()
    token, secret = secrets.token_hex(16), secrets.token_hex(24)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-bench-")))
        skus = write_catalog(work_dir / "catalog.json", args.skus, args.stock)
        erp_port = free_port()
        erp_url = f"http://{HOST}:{erp_port}"
        stack.enter_context(running("sandbox-erp", erp_sync("sandbox-erp", "--port", str(erp_port)),
                                    sandbox_env(work_dir / "catalog.json", token), erp_port, work_dir))
        amqp_url = stack.enter_context(private_vhost(base.amqp_url, base.retry_delays_ms))
        database_url = stack.enter_context(private_database(base.database_url))
        settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_base_url=erp_url,
                                 erp_api_token=token, erp_order_mode=args.mode)
        env = server_env(settings, secret, work_dir / "metrics") | {
            "ERP_BASE_URL": erp_url, "ERP_API_TOKEN": token, "ERP_ORDER_MODE": args.mode}
        migrate(env)
        engine = bench_engine(database_url)
        stack.callback(engine.dispose)
        setup = Setup(args, env, amqp_url, engine, work_dir, erp_url=erp_url, token=token, skus=skus)
        one = throughput(setup, 1)
        two = throughput(setup, 2)
        seen = latency(setup)
    return figures(args, settings, (one, two, seen), (load_before, os.getloadavg()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logging()
    return run_benchmark(run, args, COMPARED, SERVICE_FAILURES + (requests.RequestException,))


if __name__ == "__main__":
    sys.exit(main())
