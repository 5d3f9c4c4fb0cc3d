"""The orders benchmark: orders a second pushed to the sandbox ERP by one and two workers, and publish-to-synced time.

Runs the sandbox ERP (a generated catalog, no webhooks) and `erp-sync migrate` on a private
database and vhost. Throughput phases pre-fill `commerce.orders` with confirmed `order.placed`
messages, start `erp-sync worker orders` processes and time them from their start until every
order is `synced`. The latency phases run one worker, then two, and publish orders at --rate. One JSON
line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.orders [--orders 4000] [--rate 100] [--duration 20] [--erp-connections kept|closed]
        [--baseline FILE]
"""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import ExitStack
from typing import Any

import requests

from bench.drain import bench_engine
from bench.harness import SERVICE_FAILURES, benchmark_main
from bench.options import at_least_one, load_parser
from bench.order_erp import order_stage
from bench.order_figures import Round, figures
from bench.order_phases import Setup, latency, throughput
from bench.spinners import idle_cores_filled
from bench.worker_procs import startup_cpu_s

ORDERS_WORKER_QUEUES = 2  # erp-sync.orders and erp-sync.orders-push
COMPARED = ("orders_1w_per_s", "orders_2w_per_s", "scaling", "worker_cpu_ms_per_order_1w",
            "worker_cpu_ms_per_order_paced_1w", "worker_cpu_ms_per_order_paced_2w",
            "worker_cpu_ms_per_order_paced_2w_double_rate", "publish_to_synced_p50_ms",
            "publish_to_synced_p99_ms")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = load_parser("Benchmark the orders worker against the sandbox ERP.", unit="orders", phase="latency",
                         rate=100.0, duration=20.0, warmup=2.0)
    parser.add_argument("--orders", type=int, default=4_000, help="orders pre-filled per throughput run (4000)")
    parser.add_argument("--skus", type=int, default=200, help="SKUs in the sandbox ERP's catalog (200)")
    parser.add_argument("--stock", type=int, default=1_000_000, help="stock of each SKU in the ERP (1000000)")
    parser.add_argument("--mode", choices=("orders", "adjust"), default="orders", help="ERP_ORDER_MODE (orders)")
    parser.add_argument("--rounds", type=at_least_one, default=1,
                        help="throughput rounds of one worker then two, alternating; the median ratio counts (1)")
    parser.add_argument("--filled-cores", action="store_true",
                        help="each round also drains through one worker beside lowest-priority spinners that fill "
                             "the idle cores: one worker on a machine as busy as two make it")
    parser.add_argument("--pinned", action="store_true",
                        help="each round also drains through one worker held to one core, then two each held to "
                             "a core of its own (taskset)")
    parser.add_argument("--push-concurrency-2w", type=int, choices=(4, 8),
                        help="each round also drains through two workers at this ORDER_PUSH_CONCURRENCY (4: as many "
                             "pushes under way as one worker at the default, 8)")
    parser.add_argument("--erp-connections", choices=("kept", "closed"), default="kept",
                        help="kept: the sandbox ERP keeps connections alive, as a production ERP does (granian); "
                             "closed: it closes each after its answer (werkzeug, its default) (kept)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up the ERP, vhost and database, run every phase, tear everything down; the figures."""
    load_before = os.getloadavg()
    with ExitStack() as stack:
        stage = order_stage(stack, args.skus, args.stock, {"ERP_ORDER_MODE": args.mode},
                            erp_keep_alive=args.erp_connections == "kept", erp_order_mode=args.mode)
        settings = stage.settings
        engine = bench_engine(settings.database_url)
        stack.callback(engine.dispose)
        setup = Setup(args, stage.env, stage.amqp_url, engine, stage.work_dir, erp_url=stage.erp_url, token=stage.token,
                      skus=stage.skus, erp_pid=stage.erp_pid)
        startup = startup_cpu_s("orders", ORDERS_WORKER_QUEUES, stage.env, stage.work_dir)
        rounds = [_round(setup, startup, n, args) for n in range(args.rounds)]
        seen = latency(setup)
        seen_by_two = latency(setup, 2)
        # As when the load doubles and a second worker is added (KEDA): each process at the rate of one.
        seen_by_two_at_double = latency(setup, 2, 2 * args.rate)
    return figures(args, settings, rounds, (seen, seen_by_two, seen_by_two_at_double), (load_before, os.getloadavg()))


def _round(setup: Setup, startup: float, number: int, args: argparse.Namespace) -> Round:
    """One worker then two, then the variants asked for: alternating, so the machine's drift falls on each alike."""
    tag = f"R{number}" if number else ""
    one, two = throughput(setup, 1, startup, tag), throughput(setup, 2, startup, tag)
    pinned = (throughput(setup, 1, startup, f"P{number}", pinned=True),
              throughput(setup, 2, startup, f"P{number}", pinned=True)) if args.pinned else None
    split = None if args.push_concurrency_2w is None else \
        (args.push_concurrency_2w, throughput(setup, 2, startup, f"S{number}", push_concurrency=args.push_concurrency_2w))
    if not args.filled_cores:
        return Round(one, two, pinned=pinned, split=split)
    with idle_cores_filled():
        return Round(one, two, throughput(setup, 1, startup, f"F{number}"), pinned, split)


main = benchmark_main(parse_args, run, COMPARED, SERVICE_FAILURES + (requests.RequestException,))


if __name__ == "__main__":
    sys.exit(main())
