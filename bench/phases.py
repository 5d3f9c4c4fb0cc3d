"""The ingress benchmark's measured phases: maximum rate on each server, then paced latency on the ingress."""
from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import queues, wrk
from bench.bare import WEBHOOK_PATH
from bench.loadgen import Post, Result, closed_loop, open_loop
from bench.servers import (
    HOST,
    ServerFailed,
    bare_command,
    free_port,
    ingress_command,
    log_tail,
    running,
)
from erp_sync.shared.topology import WORK_QUEUES

INGRESS_QUEUE = WORK_QUEUES["inventory"].name


@dataclass(frozen=True)
class Plan:
    """What every phase needs: the options, the pre-signed posts, the generator, a scratch folder."""

    args: argparse.Namespace
    posts: list[Post]
    use_wrk: bool
    work_dir: Path


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
class IngressRun:
    peak: Throughput
    peak_delivery: Delivery
    latency: Result
    latency_delivery: Delivery


def progress(line: str) -> None:
    print(f"bench: {line}", file=sys.stderr, flush=True)


def max_rate(plan: Plan, port: int, duration_s: float) -> Throughput:
    """Closed-loop load on `port` for `duration_s`: wrk, or the Python generator without it."""
    if plan.use_wrk:
        script = wrk.write_script(plan.posts, plan.work_dir / "post.lua")
        result = wrk.run_wrk(f"http://{HOST}:{port}{WEBHOOK_PATH}", script, duration_s,
                             plan.args.connections, plan.args.wrk_threads)
        return Throughput(result.successes, result.status_errors + result.socket_errors, result.duration_s)
    run = asyncio.run(closed_loop(HOST, port, plan.posts, duration_s, plan.args.connections))
    ok = sum(count for status, count in run.statuses.items() if 200 <= status < 300)
    return Throughput(ok, run.errors + sum(run.statuses.values()) - ok, run.duration_s)


def measure_bare(plan: Plan, env: dict[str, str]) -> Throughput:
    port = free_port()
    with running("bare", bare_command(port), env, port, plan.work_dir):
        max_rate(plan, port, plan.args.warmup)
        peak = max_rate(plan, port, plan.args.duration)
        _require_answers("bare", peak, plan.work_dir)
    progress(f"bare endpoint: {peak.rate:.0f} req/s")
    return peak


def measure_ingress(plan: Plan, env: dict[str, str], amqp_url: str) -> IngressRun:
    """Maximum rate, then latency at a fixed fraction of it; the queue counted after each."""
    port = free_port()
    with running("ingress", ingress_command(port), env, port, plan.work_dir):
        max_rate(plan, port, plan.args.warmup)  # every worker connects its publisher
        _empty_queue(amqp_url)
        peak = max_rate(plan, port, plan.args.duration)
        _require_answers("ingress", peak, plan.work_dir)
        peak_delivery = Delivery(peak.ok, queues.settled_depth(amqp_url, INGRESS_QUEUE))
        progress(f"ingress: {peak.rate:.0f} req/s, {peak_delivery.queued} queued for {peak.ok} answered")
        _empty_queue(amqp_url)
        latency = asyncio.run(open_loop(HOST, port, plan.posts, peak.rate * plan.args.rate_fraction,
                                        plan.args.duration, plan.args.connections))
        latency_delivery = Delivery(latency.statuses[202], queues.settled_depth(amqp_url, INGRESS_QUEUE))
        progress(f"ingress paced: p50 {latency.percentile_ms(0.5):.1f} ms, p99 {latency.percentile_ms(0.99):.1f} ms")
    return IngressRun(peak, peak_delivery, latency, latency_delivery)


def _require_answers(name: str, peak: Throughput, work_dir: Path) -> None:
    # Nothing to compare and no rate to pace phase 2 at; the server's log says why.
    if peak.ok == 0:
        raise ServerFailed(f"{name} answered no request with 2xx ({peak.failed} failed):\n"
                           f"{log_tail(work_dir / f'{name}.log')}")


def _empty_queue(amqp_url: str) -> None:
    # Requests still in flight when the last load stopped would land after an early purge.
    queues.settled_depth(amqp_url, INGRESS_QUEUE)
    queues.purge(amqp_url, INGRESS_QUEUE)
