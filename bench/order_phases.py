"""The orders benchmark's phases: drain pre-filled orders to the ERP, and time paced orders to `synced`."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from bench import queues
from bench.cpu import broker_cpu_s, busy_share, cpu_times, database_cpu_s, tree_cpu_s
from bench.drain import Drain, empty_tables, wait_count
from bench.order_erp import erp_orders
from bench.order_load import (
    ORDERS_QUEUE,
    PUSH_QUEUE,
    Paced,
    make_orders,
    prefill_orders,
    publish_paced,
)
from bench.phases import progress
from bench.stage import Stage
from bench.worker_procs import workers_running

POLL_INTERVAL_S = 0.05
# Logged by workers/order_sync.py each time the ERP could not be reached.
RETRY_LOG = " pending_sync (attempt "
_SYNCED = text("SELECT count(*) FROM orders WHERE status = 'synced' AND order_id LIKE :pattern")
_STATUSES = text("SELECT status, count(*) FROM orders WHERE order_id LIKE :pattern GROUP BY status")
_TIMES = text("SELECT order_id, status, synced_at, updated_at FROM orders WHERE order_id LIKE :pattern")


@dataclass(frozen=True)
class Setup(Stage):
    """A stage with the sandbox ERP: its URL, its token, the SKUs of its catalog."""

    erp_url: str
    token: str
    skus: list[str]
    erp_pid: int = 0  # the sandbox ERP's process, for its CPU per order


@dataclass(frozen=True)
class Pushed:
    """A drain of pre-filled orders, and where every order ended up."""

    drain: Drain
    statuses: dict[str, int]
    erp_orders: int
    retried: int
    left_on_queue: int
    cpu_busy: float  # share of the machine's CPU time busy during the drain (every process)
    worker_cpu_s: float  # CPU time of the worker processes, start-up included
    startup_cpu_s: float  # of one worker process, idle (bench.worker_procs.startup_cpu_s)
    database_cpu_s: float  # of the database's PostgreSQL backends during the drain
    others_cpu_s: dict[str, float]  # during the drain: the sandbox ERP, RabbitMQ, and every other process

    @property
    def cpu_ms_per_order(self) -> float:
        return self.worker_cpu_s / max(self.drain.processed, 1) * 1000

    @property
    def cpu_ms_per_order_after_startup(self) -> float:
        processes = self.worker_cpu_s - self.startup_cpu_s * self.processes
        return max(processes, 0.0) / max(self.drain.processed, 1) * 1000

    @property
    def database_cpu_ms_per_order(self) -> float:
        return self.database_cpu_s / max(self.drain.processed, 1) * 1000

    def cpu_budget_ms_per_order(self) -> dict[str, float]:
        """Where the machine's CPU of an order went: the workers, PostgreSQL, the ERP, RabbitMQ, the rest."""
        others = dict(self.others_cpu_s)
        machine = others.pop("machine")
        spent = {"workers": self.worker_cpu_s, "postgresql": self.database_cpu_s, **others}
        spent["rest"] = machine - sum(spent.values())
        return {name: round(value / max(self.drain.processed, 1) * 1000, 3) for name, value in spent.items()}

    processes: int = 1


@dataclass(frozen=True)
class Latency:
    """Publish-to-synced seconds of each synced order of the paced run, and the orders that never got there."""

    paced: Paced
    latencies_s: list[float]
    statuses: dict[str, int]
    erp_orders: int
    processes: int
    worker_cpu_s: float  # of the worker processes from the measured run's first publish to its last order synced
    context_switches: int  # of the worker processes' threads over the same time

    @property
    def cpu_ms_per_order(self) -> float:
        return self.worker_cpu_s / max(len(self.latencies_s), 1) * 1000

    @property
    def context_switches_per_order(self) -> float:
        return self.context_switches / max(len(self.latencies_s), 1)


def wait_synced(engine: Engine, prefix: str, expected: int, started: float, timeout_s: float,
                alive: Callable[[], None]) -> Drain:
    """Poll until `expected` orders named `<prefix>...` are synced; `alive` raises if a worker died."""
    return wait_count(engine, _SYNCED, {"pattern": f"{prefix}%"}, expected, started, timeout_s, alive, POLL_INTERVAL_S)


def _statuses(engine: Engine, prefix: str) -> dict[str, int]:
    with engine.connect() as connection:
        return {str(status): int(count) for status, count in connection.execute(_STATUSES, {"pattern": f"{prefix}%"})}


def _fresh_state(setup: Setup) -> None:
    empty_tables(setup.engine)
    for queue in (ORDERS_QUEUE, PUSH_QUEUE):
        queues.purge(setup.amqp_url, queue)


def throughput(setup: Setup, processes: int, startup_cpu_s: float, tag: str = "", pinned: bool = False,
               push_concurrency: int | None = None) -> Pushed:
    """Fill the orders queue, start `processes` workers and time them until every order is synced.

    `tag` sets a phase's order ids apart from those of earlier phases, which the sandbox ERP still holds.
    `pinned`: each worker process on a core of its own (bench.worker_procs.workers_running).
    `push_concurrency`: each worker's ORDER_PUSH_CONCURRENCY, if not the stage's.
    """
    env = setup.env if push_concurrency is None else setup.env | {"ORDER_PUSH_CONCURRENCY": str(push_concurrency)}
    prefix = f"BENCH-{processes}W{tag}-"
    orders = make_orders(prefix, setup.args.orders, setup.skus)
    _fresh_state(setup)
    prefill_orders(setup.amqp_url, orders)
    database_before = database_cpu_s(setup.engine)  # this benchmark's own backend; the workers' are not there yet
    with workers_running("orders", processes, env, setup.work_dir, f"x{processes}{tag}", pinned=pinned) as workers:
        started, cpu_before = time.monotonic(), cpu_times()  # after spawning: the processes' start-up counts
        others_before = _others_cpu_s(setup.erp_pid, cpu_before)
        drain = wait_synced(setup.engine, prefix, len(orders), started, setup.args.drain_timeout, workers.check_alive)
        cpu_after = cpu_times()
        cpu_busy, worker_cpu_s = busy_share(cpu_before, cpu_after), workers.cpu_s()
        others = {name: value - others_before[name] for name, value in _others_cpu_s(setup.erp_pid, cpu_after).items()}
        database_s = database_cpu_s(setup.engine) - database_before  # before the workers' backends end
    left = sum(queues.settled_depth(setup.amqp_url, queue, quiet_s=0.2) for queue in (ORDERS_QUEUE, PUSH_QUEUE))
    result = Pushed(drain, _statuses(setup.engine, prefix), erp_orders(setup.erp_url, setup.token, prefix),
                    workers.count_in_logs(RETRY_LOG), left, cpu_busy, worker_cpu_s, startup_cpu_s, database_s, others,
                    processes)
    progress(f"orders x{processes}{tag}: {drain.processed}/{drain.expected} synced in {drain.elapsed_s:.2f} s "
             f"= {drain.rate:.0f}/s (first after {drain.first_row_s or 0:.2f} s), {result.erp_orders} in the ERP, "
             f"{result.retried} retried, {left} left on the queue, CPUs {cpu_busy:.0%} busy, "
             f"workers' CPU {result.cpu_ms_per_order:.2f} ms an order, "
             f"{result.cpu_ms_per_order_after_startup:.2f} without their start-up, "
             f"PostgreSQL's {result.database_cpu_ms_per_order:.2f}")
    return result


def _others_cpu_s(erp_pid: int, machine: tuple[int, int]) -> dict[str, float]:
    return {"erp": tree_cpu_s(erp_pid) if erp_pid else 0.0, "rabbitmq": broker_cpu_s(),
            "machine": machine[0] / os.sysconf("SC_CLK_TCK")}


def latency(setup: Setup, processes: int = 1, rate: float | None = None) -> Latency:
    """`processes` workers at `rate` orders a second (else --rate); a paced warm-up, then the measured paced run.

    Below the machine's capacity, the workers' CPU per order shows what a second process costs
    without the contention of a drain that keeps every core busy.
    """
    args = setup.args
    rate = rate or args.rate
    run = f"{processes}W{rate:g}"
    prefix, warmup_prefix = f"BENCH-LAT{run}-", f"BENCH-WARM{run}-"
    warmup = make_orders(warmup_prefix, round(rate * args.warmup), setup.skus)
    measured = make_orders(prefix, round(rate * args.duration), setup.skus)
    _fresh_state(setup)
    with workers_running("orders", processes, setup.env, setup.work_dir, f"latency{run}") as workers:
        started = time.monotonic()
        publish_paced(setup.amqp_url, warmup, rate)
        wait_synced(setup.engine, warmup_prefix, len(warmup), started, args.drain_timeout, workers.check_alive)
        cpu_before, switches_before = workers.cpu_s(), workers.context_switches()
        paced = publish_paced(setup.amqp_url, measured, rate)
        wait_synced(setup.engine, prefix, len(measured), time.monotonic(), args.drain_timeout, workers.check_alive)
        worker_cpu_s, switches = workers.cpu_s() - cpu_before, workers.context_switches() - switches_before
    with setup.engine.connect() as connection:
        rows = connection.execute(_TIMES, {"pattern": f"{prefix}%"}).all()
    latencies = [_done_at(synced_at, updated_at) - paced.published_at[order_id]
                 for order_id, status, synced_at, updated_at in rows if status == "synced"]
    result = Latency(paced, latencies, _statuses(setup.engine, prefix), erp_orders(setup.erp_url, setup.token, prefix),
                     processes, worker_cpu_s, switches)
    progress(f"paced at {rate:g}/s for {args.duration:g} s, {processes} worker(s): {len(latencies)}/{len(measured)} "
             f"synced, workers' CPU {result.cpu_ms_per_order:.2f} ms an order")
    return result


def _done_at(synced_at: datetime | None, updated_at: datetime) -> float:
    # synced_at is the worker's clock when the ERP's answer arrived; updated_at only if it were missing.
    return (synced_at or updated_at).timestamp()
