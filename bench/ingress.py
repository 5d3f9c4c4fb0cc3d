"""The ingress benchmark: signed webhooks a second through gunicorn to a confirmed publish, beside a bare 202.

Phase 1 drives the bare endpoint, then the ingress, as hard as --connections keep-alive
connections can (wrk; a Python closed loop where wrk is missing). Phase 2 offers the ingress
--rate-fraction of its phase-1 rate on a fixed schedule and takes p50/p99 from each request's
scheduled send time. After each ingress phase the queue must hold one message per 202.
One JSON line goes to stdout, progress to stderr:

    .venv/bin/python bench/ingress.py [--duration 15] [--connections 64] [--baseline FILE]
"""
from __future__ import annotations

import sys
from pathlib import Path

# `python bench/ingress.py` puts bench/ first on sys.path, where this very file would shadow
# the `ingress` package; the repository root takes its place.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

from bench import queues, wrk  # noqa: E402
from bench.bare import WEBHOOK_PATH  # noqa: E402
from bench.loadgen import Post, Result, closed_loop, open_loop  # noqa: E402
from bench.report import beside_baseline, emit, load_baseline  # noqa: E402
from bench.sandbox import private_database, private_vhost  # noqa: E402
from bench.servers import HOST, ServerFailed, bare_command, free_port, ingress_command, running  # noqa: E402
from ingress.serve import gunicorn_options  # noqa: E402
from shared.errors import ErpSyncError  # noqa: E402
from shared.settings import Settings, load_settings  # noqa: E402
from shared.topology import WORK_QUEUES  # noqa: E402
from tests.factories import encode, inventory_event, signed_headers  # noqa: E402

TARGET_RATIO = 0.6
TARGET_P99_MS = 20.0
INGRESS_QUEUE = WORK_QUEUES["inventory"].name
COMPARED = ("ingress_rps", "bare_rps", "ratio", "offered_rps", "p50_ms", "p99_ms")
EXIT_OK, EXIT_FAILURE, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(frozen=True)
class Throughput:
    """A maximum-rate run: 2xx answers, other answers and failed exchanges, over its duration."""

    ok: int
    failed: int
    duration_s: float

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s


@dataclass(frozen=True)
class Delivery:
    """202s answered against messages found on the queue afterwards."""

    answered: int
    queued: int

    @property
    def lost(self) -> int:
        return max(0, self.answered - self.queued)

    @property
    def unanswered(self) -> int:
        """Stored but never answered: in flight when wrk stopped, or timed out at the client."""
        return max(0, self.queued - self.answered)


@dataclass(frozen=True)
class Plan:
    """What the run needs beyond the command line: prepared posts, the generator, a work folder."""

    args: argparse.Namespace
    posts: list[Post]
    use_wrk: bool
    work_dir: Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the webhook ingress against a bare 202 endpoint.")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured phase (15)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per server (2)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (64)")
    parser.add_argument("--rate-fraction", type=float, default=0.5,
                        help="phase 2 offers this fraction of the ingress's maximum rate (0.5)")
    parser.add_argument("--bodies", type=int, default=16, help="distinct pre-signed events to cycle through (16)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="phase 1 load generator; auto = wrk when installed")
    parser.add_argument("--baseline", type=Path, help="a saved earlier JSON line to compare against")
    return parser.parse_args(argv)


def signed_posts(secret: str, count: int) -> list[Post]:
    """Distinct inventory.change events, signed once before the clock starts."""
    bodies = [encode(inventory_event()) for _ in range(count)]
    return [Post(WEBHOOK_PATH, body, signed_headers(body, secret)) for body in bodies]


def server_env(settings: Settings, secret: str, metrics_dir: Path) -> dict[str, str]:
    metrics_dir.mkdir()
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "ERP_WEBHOOK_SECRET": secret,
        # serve() would otherwise leave a fresh temporary folder behind on every start.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


def max_rate(plan: Plan, port: int, duration_s: float) -> Throughput:
    """Closed-loop load on `port` for `duration_s`."""
    if plan.use_wrk:
        script = wrk.write_script(plan.posts, plan.work_dir / "post.lua")
        result = wrk.run_wrk(f"http://{HOST}:{port}{WEBHOOK_PATH}", script, duration_s,
                             plan.args.connections, plan.args.wrk_threads)
        return Throughput(result.successes, result.status_errors + result.socket_errors, result.duration_s)
    run = asyncio.run(closed_loop(HOST, port, plan.posts, duration_s, plan.args.connections))
    ok = sum(count for status, count in run.statuses.items() if 200 <= status < 300)
    return Throughput(ok, run.errors + sum(run.statuses.values()) - ok, run.duration_s)


def paced(plan: Plan, port: int, rate: float) -> Result:
    return asyncio.run(open_loop(HOST, port, plan.posts, rate, plan.args.duration, plan.args.connections))


def measure_bare(plan: Plan, env: dict[str, str]) -> Throughput:
    port = free_port()
    with running("bare", bare_command(port), env, port, plan.work_dir):
        max_rate(plan, port, plan.args.warmup)
        peak = max_rate(plan, port, plan.args.duration)
    _progress(f"bare endpoint: {peak.rate:.0f} req/s")
    return peak


def measure_ingress(plan: Plan, env: dict[str, str], amqp_url: str) -> tuple[Throughput, Delivery, Result, Delivery]:
    """Maximum rate, then latency at a fixed fraction of it; the queue checked after each."""
    port = free_port()
    with running("ingress", ingress_command(port), env, port, plan.work_dir):
        max_rate(plan, port, plan.args.warmup)  # every worker connects its publisher
        # Warm-up requests still in flight when wrk stopped land after an early purge.
        queues.settled_depth(amqp_url, INGRESS_QUEUE)
        queues.purge(amqp_url, INGRESS_QUEUE)
        peak = max_rate(plan, port, plan.args.duration)
        peak_delivery = Delivery(peak.ok, queues.settled_depth(amqp_url, INGRESS_QUEUE))
        _progress(f"ingress: {peak.rate:.0f} req/s, {peak_delivery.queued} queued for {peak.ok} answered")
        queues.purge(amqp_url, INGRESS_QUEUE)
        latency = paced(plan, port, peak.rate * plan.args.rate_fraction)
        latency_delivery = Delivery(latency.statuses[202], queues.settled_depth(amqp_url, INGRESS_QUEUE))
        _progress(f"ingress paced: p99 {latency.percentile_ms(0.99):.1f} ms")
    return peak, peak_delivery, latency, latency_delivery


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up vhost, database and servers, measure, tear everything down; the figures."""
    base = load_settings()
    secret = secrets.token_hex(24)
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and wrk.available())
    with ExitStack() as stack:
        work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-bench-")))
        amqp_url = stack.enter_context(private_vhost(base.amqp_url, base.retry_delays_ms))
        database_url = stack.enter_context(private_database(base.database_url))
        settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_webhook_secret=secret)
        plan = Plan(args, signed_posts(secret, args.bodies), use_wrk, work_dir)
        bare = measure_bare(plan, server_env(settings, secret, work_dir / "metrics-bare"))
        measured = measure_ingress(plan, server_env(settings, secret, work_dir / "metrics-ingress"), amqp_url)
    return figures(plan, settings, bare, *measured)


def figures(
    plan: Plan, settings: Settings, bare: Throughput,
    peak: Throughput, peak_delivery: Delivery, latency: Result, latency_delivery: Delivery,
) -> dict[str, Any]:
    options = gunicorn_options(settings)
    ratio = peak.rate / bare.rate
    p50, p99 = latency.percentile_ms(0.5), latency.percentile_ms(0.99)
    failed = peak.failed + latency.errors + sum(latency.statuses.values()) - latency.statuses[202]
    generator = f"{wrk.version()} closed loop" if plan.use_wrk else "python asyncio closed loop (no wrk)"
    return {
        "benchmark": "ingress",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "ingress_rps": round(peak.rate, 1),
        "bare_rps": round(bare.rate, 1),
        "ratio": round(ratio, 3),
        "offered_rps": round(len(latency.send_lags_s) / latency.duration_s, 1),
        "achieved_rps": round(latency.statuses[202] / latency.duration_s, 1),
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(latency.percentile_ms(1.0), 2),
        "send_lag_p99_ms": round(latency.percentile_ms(0.99, latency.send_lags_s), 2),
        "failed": failed,
        "lost": peak_delivery.lost + latency_delivery.lost,
        "stored_unanswered": peak_delivery.unanswered + latency_delivery.unanswered,
        "target_met": ratio >= TARGET_RATIO and p99 < TARGET_P99_MS,
        "target": {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_MS},
        "workers": options["workers"],
        "threads": options["threads"],
        "worker_class": options["worker_class"],
        "connections": plan.args.connections,
        "duration_s": plan.args.duration,
        "load_generator": {"max_rate": generator, "latency": "python asyncio open loop, from scheduled send"},
    }


def _progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through every `finally`: servers stopped, vhost and database dropped.
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    started = time.monotonic()
    try:
        result = run(args)
    except KeyboardInterrupt:
        _progress("interrupted; servers stopped, vhost and database dropped")
        return EXIT_INTERRUPTED
    except (ServerFailed, ErpSyncError, subprocess.CalledProcessError) as exc:
        _progress(f"failed: {exc}")
        return EXIT_FAILURE
    if args.baseline:
        result |= beside_baseline(result, load_baseline(args.baseline), COMPARED)
    _progress(f"run took {time.monotonic() - started:.0f} s")
    emit(result)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
