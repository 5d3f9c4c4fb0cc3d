"""The workers benchmark: inventory and catalog events a second, and how soon a webhook's figure is readable.

Throughput phases fill a work queue first (confirmed publishes to `erp.events`), then start
`erp-sync worker` processes and time them from their start until every event has its
processed_events row; nothing is subtracted, start-up included. The visibility phase runs the
ingress and one inventory worker, offers signed webhooks at --rate and follows each 202 to the
read API. One JSON line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.workers [--duration 60] [--rate 500] [--baseline FILE]
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from contextlib import ExitStack
from typing import Any

from bench.events import VARIANTS_PER_GROUP
from bench.harness import benchmark_main
from bench.options import at_least_one, load_parser
from bench.stage import enter_services
from bench.worker_figures import figures
from bench.worker_phases import (
    Setup,
    catalog_round,
    inventory_throughput,
    visibility,
)

COMPARED = ("inventory_1w_eps", "inventory_2w_eps", "inventory_1w_cpu_ms_per_event", "inventory_1w_db_cpu_ms_per_event",
            "visible_p50_ms", "visible_p99_ms", "catalog_variants_per_s", "catalog_cpu_ms_per_variant")


PHASES = ("inventory", "catalog", "visibility")


def _phases(value: str) -> str:
    unknown = set(value.split(",")) - set(PHASES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {PHASES}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = load_parser("Benchmark the inventory and catalog workers end to end.", unit="webhooks",
                         phase="visibility", rate=500.0, duration=60.0, warmup=3.0)
    parser.add_argument("--events", type=int, default=20_000, help="inventory events pre-filled per run (20000)")
    parser.add_argument("--skus", type=int, default=1_000, help="SKUs the inventory events cycle over (1000)")
    parser.add_argument("--groups", type=int, default=2_000, help="catalog groups pre-filled (2000)")
    parser.add_argument("--variants-per-group", type=int, default=VARIANTS_PER_GROUP,
                        help=f"variants in each catalog group ({VARIANTS_PER_GROUP}); e.g. 1000 for an ERP's bulk load")
    parser.add_argument("--sample-every", type=int, default=10,
                        help="follow every Nth event to the read API (10); the rest are only posted")
    parser.add_argument("--poll-interval-ms", type=float, default=3.0,
                        help="pause after each read-API poll of a pending event (3)")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per pool (16)")
    parser.add_argument("--catalog-rounds", type=at_least_one, default=1,
                        help="catalog rounds, each one worker then two, alternating; the median ratio counts (1)")
    parser.add_argument("--catalog-batches-2w", type=int, choices=(1, 2),
                        help="each round also drains through two catalog workers at this CATALOG_BATCH_CONCURRENCY "
                             "(1: as many batches under way as one worker at the default, 2)")
    parser.add_argument("--phases", default=",".join(PHASES), type=_phases,
                        help=f"which phases to run, comma-separated ({','.join(PHASES)})")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up vhost and database, run every phase, tear everything down; the figures."""
    secret = secrets.token_hex(24)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        services = enter_services(stack, secret)
        settings = services.settings
        setup = Setup(args, services.env, services.amqp_url, services.engine, services.work_dir, secret=secret)
        phases = set(args.phases.split(","))
        one = inventory_throughput(setup, 1) if "inventory" in phases else None
        two = inventory_throughput(setup, 2) if "inventory" in phases else None
        catalog = [catalog_round(setup, args.catalog_batches_2w) for _ in range(args.catalog_rounds)] \
            if "catalog" in phases else []
        followed = visibility(setup) if "visibility" in phases else None
    return figures(args, settings, (one, two, catalog, followed), (load_before, os.getloadavg()))


main = benchmark_main(parse_args, run, COMPARED)


if __name__ == "__main__":
    sys.exit(main())
