"""The ingress benchmark's measured phases: maximum rate on each server, then paced latency on the ingress."""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench import queues, wrk
from bench.cpu import broker_cpu_s, tree_cpu_s
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
    cpu_s: float = 0.0  # of the server's processes over the run
    broker_cpu_s: float = 0.0  # of RabbitMQ over the run (the whole broker: other users of it count too)

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / max(self.ok, 1)

    @property
    def broker_cpu_ms_per_request(self) -> float:
        return 1000 * self.broker_cpu_s / max(self.ok, 1)


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


def measured_rate(plan: Plan, server: subprocess.Popen[bytes], port: int) -> Throughput:
    """`max_rate` for --duration, with the CPU the server's processes and RabbitMQ spent meanwhile (from /proc)."""
    before, broker_before = tree_cpu_s(server.pid), broker_cpu_s()
    peak = max_rate(plan, port, plan.args.duration)
    return replace(peak, cpu_s=tree_cpu_s(server.pid) - before, broker_cpu_s=broker_cpu_s() - broker_before)


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


def measure_bare(plan: Plan, env: dict[str, str], name: str = "bare",
                 command: Callable[[int], list[str]] = bare_command) -> Throughput:
    port = free_port()
    with running(name, command(port), env, port, plan.work_dir) as server:
        max_rate(plan, port, plan.args.warmup)
        peak = measured_rate(plan, server, port)
        _require_answers(name, peak, plan.work_dir)
    progress(f"{name} endpoint: {peak.rate:.0f} req/s, {peak.cpu_ms_per_request:.3f} ms of CPU a request")
    return peak


def measure_ingress(plan: Plan, env: dict[str, str], amqp_url: str) -> IngressRun:
    """Maximum rate, then latency at a fixed fraction of it; the queue counted after each."""
    port = free_port()
    with running("ingress", ingress_command(port), env, port, plan.work_dir) as server:
        max_rate(plan, port, plan.args.warmup)  # every worker connects its publisher
        _empty_queue(amqp_url)
        peak = measured_rate(plan, server, port)
        _require_answers("ingress", peak, plan.work_dir)
        peak_delivery = Delivery(peak.ok, queues.settled_depth(amqp_url, INGRESS_QUEUE))
        progress(f"ingress: {peak.rate:.0f} req/s, {peak.cpu_ms_per_request:.3f} ms of CPU a webhook "
                 f"(RabbitMQ {peak.broker_cpu_ms_per_request:.3f} ms), "
                 f"{peak_delivery.queued} queued for {peak.ok} answered")
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
