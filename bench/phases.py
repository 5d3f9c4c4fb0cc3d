"""The ingress benchmark's measured phases: maximum rate on each server, then paced latency on the ingress."""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench import confirm_times, queues, wrk
from bench.bare import WEBHOOK_PATH
from bench.broker_bursts import Bursts, watching_the_broker
from bench.cpu import broker_cpu_s, tree_cpu_s
from bench.loadgen import Post, Result, closed_loop
from bench.paced import open_loop
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
    # RabbitMQ's publish-to-confirm over the paced phase (bucket upper bounds, ms) and the share over 20 ms.
    confirm_p50_ms: float
    confirm_p99_ms: float
    confirm_over_20ms: float
    broker_bursts: Bursts  # RabbitMQ's CPU in each 100 ms of the paced phase


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
        confirms_before = confirm_times.read_buckets(HOST, port)
        with watching_the_broker() as bursts:
            latency = paced(plan, port, "ingress", paced_rate(plan, peak))
        confirms = confirm_times.read_buckets(HOST, port)
        latency_delivery = Delivery(latency.statuses[202], queues.settled_depth(amqp_url, INGRESS_QUEUE))
    return IngressRun(peak, peak_delivery, latency, latency_delivery,
                      confirm_times.percentile_bound_ms(confirms_before, confirms, 0.5),
                      confirm_times.percentile_bound_ms(confirms_before, confirms, 0.99),
                      confirm_times.share_over(confirms_before, confirms, 0.02), bursts)


def paced_rate(plan: Plan, peak: Throughput) -> float:
    """Phase 2's offered rate: --rate when given (the same load for runs side by side), else a fraction of the peak."""
    return float(plan.args.rate) if plan.args.rate else peak.rate * plan.args.rate_fraction


def paced(plan: Plan, port: int, name: str, rate: float) -> Result:
    """The open-loop generator at `rate` for --duration; progress shows its latency and its own lag and CPU."""
    result = open_loop(HOST, port, plan.posts, rate, plan.args.duration, plan.args.connections)
    progress(f"{name} paced at {rate:.0f}/s: p50 {result.percentile_ms(0.5):.1f} ms, "
             f"p99 {result.percentile_ms(0.99):.1f} ms; generator lag p99 "
             f"{result.percentile_ms(0.99, result.send_lags_s):.1f} ms, "
             f"{1000 * result.cpu_s / max(len(result.send_lags_s), 1):.3f} ms of its CPU a request")
    return result


def measure_bare_paced(plan: Plan, env: dict[str, str], rate: float, name: str = "bare",
                       command: Callable[[int], list[str]] = bare_command) -> Result:
    """The bare endpoint offered the ingress's paced rate by the same generator: the machine's own tail."""
    port = free_port()
    with running(f"{name}-paced", command(port), env, port, plan.work_dir):
        max_rate(plan, port, plan.args.warmup)
        return paced(plan, port, name, rate)


def _require_answers(name: str, peak: Throughput, work_dir: Path) -> None:
    # Nothing to compare and no rate to pace phase 2 at; the server's log says why.
    if peak.ok == 0:
        raise ServerFailed(f"{name} answered no request with 2xx ({peak.failed} failed):\n"
                           f"{log_tail(work_dir / f'{name}.log')}")


def _empty_queue(amqp_url: str) -> None:
    # Requests still in flight when the last load stopped would land after an early purge.
    queues.settled_depth(amqp_url, INGRESS_QUEUE)
    queues.purge(amqp_url, INGRESS_QUEUE)
