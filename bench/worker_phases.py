"""The workers benchmark's phases: drain a pre-filled queue, and follow paced events to the read API."""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from bench import queues
from bench.cpu import broker_cpu_s, busy_share, cpu_times, database_cpu_s, process_cpu_s, tree_cpu_s
from bench.drain import Drain, empty_tables, wait_processed
from bench.events import catalog_groups, stock_events
from bench.phases import progress
from bench.prefill import prefill
from bench.servers import HOST, api_command, free_port, ingress_command, running
from bench.stage import Stage
from bench.visibility import Pace, Visibility, paced
from bench.worker_procs import startup_cpu_s, workers_running
from erp_sync.shared.topology import WORK_QUEUES
from tests.support.factories import signed_headers

INVENTORY, CATALOG = WORK_QUEUES["inventory"], WORK_QUEUES["catalog"]
# Logged by shared/batch_runner.py for each message sent to a retry delay or to parking.
RETRY_LOG, PARK_LOG = "; attempt ", "parking message "


@dataclass(frozen=True)
class Setup(Stage):
    """A stage whose webhooks are signed with `secret`."""

    secret: str


@dataclass(frozen=True)
class Drained:
    """A pre-filled queue emptied by the workers, with what went wrong on the way."""

    drain: Drain
    retried: int
    parked: int
    left_on_queue: int
    cpu_s: float  # the worker processes', start-up included
    db_cpu_s: float  # their PostgreSQL backends'
    startup_cpu_s: float = 0.0  # the processes' start-ups, from an idle worker's (worker_procs.startup_cpu_s)


def _drain_phase(setup: Setup, worker: str, processes: int, bodies: list[bytes], tag: str,
                 settings: dict[str, str] | None = None) -> Drained:
    """Empty the tables, fill the queue, start the workers and time them until every event is recorded.

    `settings`: environment variables the workers get beyond the run's own.
    """
    queue = WORK_QUEUES[worker]
    env = setup.env | (settings or {})
    empty_tables(setup.engine)
    # Every phase's own queue, and the media queue the catalog's follow-ups fill with no media worker
    # running: past its bound (three phases of 40,000 groups) the catalog worker would wait for room.
    for name in (queue.name, WORK_QUEUES["media"].name):
        queues.purge(setup.amqp_url, name)
    startup_s = startup_cpu_s(worker, 1, env, setup.work_dir) * processes
    prefill(setup.amqp_url, queue, bodies)
    event_type = queue.routing_key
    with workers_running(worker, processes, env, setup.work_dir, tag) as workers:
        started = time.monotonic()  # taken after spawning: the processes' start-up counts
        drain = wait_processed(setup.engine, event_type, len(bodies), started, setup.args.drain_timeout,
                               workers.check_alive)
        cpu_s, db_cpu_s = workers.cpu_s(), database_cpu_s(setup.engine)  # before they stop and their backends end
    left = queues.settled_depth(setup.amqp_url, queue.name, quiet_s=0.2)
    parked = queues.depth(setup.amqp_url, queue.parking_queue)
    result = Drained(drain, workers.count_in_logs(RETRY_LOG), parked, left, cpu_s, db_cpu_s, startup_s)
    progress(f"{worker} {tag}: {drain.processed}/{drain.expected} in {drain.elapsed_s:.2f} s "
             f"= {drain.rate:.0f}/s (first row after {drain.first_row_s or 0:.2f} s), "
             f"{result.retried} retried, {parked} parked, {left} left; CPU {cpu_s:.2f} s ({startup_s:.2f} s of it "
             f"start-up), database {db_cpu_s:.2f} s")
    return result


def inventory_throughput(setup: Setup, processes: int) -> Drained:
    args = setup.args
    events = stock_events(args.events, args.skus)
    return _drain_phase(setup, "inventory", processes, [event.body for event in events], f"x{processes}")


def catalog_throughput(setup: Setup, processes: int = 1, batch_concurrency: int | None = None) -> Drained:
    """`batch_concurrency`: each worker's CATALOG_BATCH_CONCURRENCY (None: the setting's default)."""
    args = setup.args
    settings = {} if batch_concurrency is None else {"CATALOG_BATCH_CONCURRENCY": str(batch_concurrency)}
    return _drain_phase(setup, "catalog", processes, catalog_groups(args.groups, args.variants_per_group),
                        f"x{processes}" + (f"-at-{batch_concurrency}" if batch_concurrency else ""), settings)


@dataclass(frozen=True)
class CatalogRound:
    """The same catalog groups drained by one worker, by two, and by two at another batch concurrency."""

    one: Drained
    two: Drained
    two_at: tuple[int, Drained] | None = None  # (each worker's CATALOG_BATCH_CONCURRENCY, its drain)


def catalog_round(setup: Setup, batch_concurrency_2w: int | None) -> CatalogRound:
    """One worker then two at the default setting, then two at `batch_concurrency_2w` if given."""
    one, two = catalog_throughput(setup), catalog_throughput(setup, 2)
    if batch_concurrency_2w is None:
        return CatalogRound(one, two)
    return CatalogRound(one, two, (batch_concurrency_2w, catalog_throughput(setup, 2, batch_concurrency_2w)))


@dataclass(frozen=True)
class Followed:
    """A paced run, the CPU seconds each process (and the database) spent in it, and the machine's busy share."""

    seen: Visibility
    cpu_s: dict[str, float]
    cpu_busy: float = 0.0  # share of all CPUs' time busy during the measured run (every process)


def visibility(setup: Setup) -> Followed:
    """The ingress, the storefront API and one inventory worker; a warm-up at the rate, then the measured run."""
    args = setup.args
    empty_tables(setup.engine)
    warmup_count, measured_count = round(args.rate * args.warmup), round(args.rate * args.duration)
    events = stock_events(warmup_count + measured_count, args.skus)
    headers = [signed_headers(event.body, setup.secret) for event in events]
    pace = Pace(args.rate, args.poll_interval_ms / 1000, args.connections, args.connections, args.sample_every)
    ports = port, api_port = free_port(), free_port()
    token = setup.env["STOREFRONT_API_TOKEN"]
    with (running("ingress", ingress_command(port), setup.env, port, setup.work_dir) as ingress,
          running("api", api_command(api_port), setup.env, api_port, setup.work_dir) as api,
          workers_running("inventory", 1, setup.env, setup.work_dir, "latency") as workers):
        asyncio.run(paced(HOST, ports, token, events[:warmup_count], headers[:warmup_count], pace))
        workers.check_alive()

        def cpu() -> dict[str, float]:
            # The database's share is all backends of the run's database: the worker's, the API's.
            # The broker's and this benchmark's (the generator and the poller) say how much of a
            # saturated machine went to the measuring itself.
            return {"ingress": tree_cpu_s(ingress.pid), "api": tree_cpu_s(api.pid), "worker": workers.cpu_s(),
                    "database": database_cpu_s(setup.engine), "broker": broker_cpu_s(),
                    "benchmark": process_cpu_s(os.getpid())}

        before, machine_before = cpu(), cpu_times()
        seen = asyncio.run(paced(HOST, ports, token, events[warmup_count:], headers[warmup_count:], pace))
        busy = busy_share(machine_before, cpu_times())
        spent = {name: value - before[name] for name, value in cpu().items()}
        workers.check_alive()
    progress(f"visibility at {args.rate:.0f}/s: {len(seen.from_202_s)} seen, {seen.never_visible} never, "
             f"{seen.refused} refused, {seen.polls} polls")
    return Followed(seen, spent, busy)
