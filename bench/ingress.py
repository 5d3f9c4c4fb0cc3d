"""The ingress benchmark: signed webhooks a second through the production server to a confirmed publish, beside a bare 202.

Phase 1 drives the bare endpoint, then the ingress, as hard as --connections keep-alive
connections can (wrk; a Python closed loop where wrk is missing). Phase 2 offers the ingress
--rate-fraction of its phase-1 rate (or --rate) on a fixed schedule and takes p50/p99 from each
request's scheduled send time; the same generator then offers both bare servers that same rate,
so the tail the machine and the generator make by themselves stands beside the door's. After
each ingress phase the queue must hold one message per 202.
One JSON line goes to stdout, progress to stderr:

    .venv/bin/python -m bench.ingress [--duration 15] [--connections 64] [--rate N] [--baseline FILE]
"""
from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import granian

from bench import wrk
from bench.bare import WEBHOOK_PATH
from bench.harness import run_benchmark
from bench.loadgen import Post
from bench.loadgen import Result
from bench.phases import IngressRun, Plan, Throughput, measure_bare, measure_bare_paced, measure_ingress, paced_rate
from bench.sandbox import private_database, private_vhost
from bench.servers import ServerFailed, gunicorn_bare_command, server_env
from erp_sync.ingress.serve import door_listener
from erp_sync.shared.errors import ErpSyncError
from erp_sync.shared.settings import Settings, load_settings
from erp_sync.shared.topology import QueueBound
from tests.support.factories import encode, inventory_event, signed_headers

TARGET_RATIO = 0.6
TARGET_CPU_RATIO = 1.5
TARGET_P99_MS = 20.0
# Far above what one maximum-rate phase can publish: at the default bound (100,000 messages) the queue
# filled within 15 s, and the door's 503s from then on capped its measured rate at 6,667/s.
ROOMY_QUEUES = QueueBound(max_length=5_000_000, max_bytes=4 * 1024 ** 3)
COMPARED = ("ingress_rps", "bare_rps", "ratio", "cpu_ratio", "offered_rps", "p50_ms", "p99_ms", "bare_p99_ms")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the webhook ingress against a bare 202 endpoint.")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase (15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per server (2)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (64)")
    parser.add_argument("--rate-fraction", type=float, default=0.5,
                        help="phase 2 offers this fraction of the ingress's maximum rate (0.5)")
    parser.add_argument("--rate", type=float,
                        help="phase 2 offers this many requests a second instead (runs side by side at one load)")
    parser.add_argument("--bodies", type=int, default=16, help="distinct pre-signed events to cycle through (16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="phase 1 load generator; auto = wrk when installed")
    parser.add_argument("--connection-per-request", action="store_true",
                        help="send `Connection: close` so each request opens a connection of its own, as a "
                             "webhook sender without keep-alive does (default: keep-alive)")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser.parse_args(argv)


def signed_posts(secret: str, count: int, close: bool = False) -> list[Post]:
    """Distinct inventory.change events, signed once before the clock starts."""
    bodies = [encode(inventory_event()) for _ in range(count)]
    extra = {"Connection": "close"} if close else {}
    return [Post(WEBHOOK_PATH, body, signed_headers(body, secret) | extra) for body in bodies]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up vhost, database and servers, measure, tear everything down; the figures."""
    base = load_settings()
    secret = secrets.token_hex(24)
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and wrk.available())
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-bench-")))
        amqp_url = stack.enter_context(private_vhost(base.amqp_url, base.retry_delays_ms, ROOMY_QUEUES))
        database_url = stack.enter_context(private_database(base.database_url))
        settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_webhook_secret=secret)
        plan = Plan(args, signed_posts(secret, args.bodies, args.connection_per_request), use_wrk, work_dir)
        env = server_env(settings, secret, work_dir / "metrics-bare")
        yardstick = measure_bare(plan, env, "gunicorn-sync-bare", gunicorn_bare_command)
        bare = measure_bare(plan, env)
        ingress = measure_ingress(plan, server_env(settings, secret, work_dir / "metrics-ingress"), amqp_url)
        rate = paced_rate(plan, ingress.peak)
        yardstick_paced = measure_bare_paced(plan, env, rate, "gunicorn-sync-bare", gunicorn_bare_command)
        bare_paced = measure_bare_paced(plan, env, rate)
    return figures(plan, settings, (yardstick, bare), ingress, (yardstick_paced, bare_paced))


def figures(plan: Plan, settings: Settings, bares: tuple[Throughput, Throughput], ingress: IngressRun,
            bares_paced: tuple[Result, Result]) -> dict[str, Any]:
    """The one JSON line's fields."""
    listener = door_listener(settings)
    peak, latency = ingress.peak, ingress.latency
    yardstick, bare = bares
    yardstick_paced, bare_paced = bares_paced
    ratio = peak.rate / yardstick.rate
    cpu_ratio = peak.cpu_ms_per_request / yardstick.cpu_ms_per_request
    p50, p99 = latency.percentile_ms(0.5), latency.percentile_ms(0.99)
    failed = peak.failed + latency.errors + sum(latency.statuses.values()) - latency.statuses[202]
    generator = f"{wrk.version()} closed loop" if plan.use_wrk else "python asyncio closed loop (no wrk)"
    return {
        "benchmark": "ingress",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "ingress_rps": round(peak.rate, 1),
        # The yardstick: the bare endpoint under gunicorn's sync workers, two of them.
        "bare_rps": round(yardstick.rate, 1),
        "ratio": round(ratio, 3),
        "ingress_cpu_ms_per_webhook": round(peak.cpu_ms_per_request, 3),
        "bare_cpu_ms_per_request": round(yardstick.cpu_ms_per_request, 3),
        "cpu_ratio": round(cpu_ratio, 2),
        # RabbitMQ's CPU per confirmed webhook, apart: not the door's, and the whole broker's (other vhosts too).
        "broker_cpu_ms_per_webhook": round(peak.broker_cpu_ms_per_request, 3),
        # The same bare endpoint under the door's own server (granian): what the framework alone allows.
        "bare_granian_rps": round(bare.rate, 1),
        "ratio_to_bare_granian": round(peak.rate / bare.rate, 3),
        "bare_granian_cpu_ms_per_request": round(bare.cpu_ms_per_request, 3),
        "offered_rps": round(len(latency.send_lags_s) / latency.duration_s, 1),
        "achieved_rps": round(latency.statuses[202] / latency.duration_s, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(latency.percentile_ms(1.0), 2),
        "send_lag_p99_ms": round(latency.percentile_ms(0.99, latency.send_lags_s), 2),
        "generator_cpu_ms_per_request": round(1000 * latency.cpu_s / max(len(latency.send_lags_s), 1), 3),
        # RabbitMQ's publish-to-confirm over phase 2, from the door's histogram: bucket upper bounds.
        "confirm_p50_ms_at_most": ingress.confirm_p50_ms,
        "confirm_p99_ms_at_most": ingress.confirm_p99_ms,
        "confirm_over_20ms_share": round(ingress.confirm_over_20ms, 4),
        # A tail with RabbitMQ's busy windows is the broker's (bench/broker_bursts.py).
        "broker_peak_share_100ms": round(ingress.broker_bursts.peak_share, 2),
        "broker_busy_windows_100ms": ingress.broker_bursts.busy_windows,
        # The same rate from the same generator to the bare 202s: the tail the machine makes without the door.
        "bare_p50_ms": round(yardstick_paced.percentile_ms(0.5), 2),
        "bare_p99_ms": round(yardstick_paced.percentile_ms(0.99), 2),
        "bare_send_lag_p99_ms": round(yardstick_paced.percentile_ms(0.99, yardstick_paced.send_lags_s), 2),
        "bare_granian_p50_ms": round(bare_paced.percentile_ms(0.5), 2),
        "bare_granian_p99_ms": round(bare_paced.percentile_ms(0.99), 2),
        "bare_granian_send_lag_p99_ms": round(bare_paced.percentile_ms(0.99, bare_paced.send_lags_s), 2),
        "failed": failed,
        "lost": ingress.peak_delivery.lost + ingress.latency_delivery.lost,
        "stored_unanswered": ingress.peak_delivery.unanswered + ingress.latency_delivery.unanswered,
        "target_met": ratio >= TARGET_RATIO and cpu_ratio <= TARGET_CPU_RATIO and p99 < TARGET_P99_MS,
        "target": {"ratio": TARGET_RATIO, "cpu_ratio": TARGET_CPU_RATIO, "p99_ms": TARGET_P99_MS},
        "workers": listener.workers,
        "threads": listener.threads,
        "server": f"granian {granian.__version__} (RSGI; webhooks answered and published on the event loop, other routes on threads)",
        "connections": plan.args.connections,
        "connection_per_request": plan.args.connection_per_request,
        "duration_s": plan.args.duration,
        "load_generator": {"max_rate": generator,
                           "latency": "python uvloop open loop (protocol callbacks), from scheduled send"},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    failures = (ServerFailed,
                ErpSyncError,
                subprocess.CalledProcessError,
                OSError)
    return run_benchmark(run, args, COMPARED, failures)


if __name__ == "__main__":
    sys.exit(main())
