"""Instructions an order costs the orders workers, one process against two, counted by valgrind's callgrind.

CPU time per order moves with how busy and how idle the machine is, and this VM exposes no hardware
counters: two workers' extra CPU time could be more work or the same work run slower. Instructions
tell the two apart, and their count does not drift with the machine. Each phase starts the workers
under callgrind on an empty queue (sandbox ERP keeping connections alive), zeroes their counters once
they consume, publishes the orders, and reads the counters when every order is synced: start-up and
stop are left out. The one-worker figure is the baseline:

    .venv/bin/python -m bench.orders_instructions [--orders 600] [--baseline FILE]

Slow (callgrind runs Python about 50 times slower): minutes, never in CI.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

from sqlalchemy import Engine

from bench import queues
from bench.drain import bench_engine, empty_tables
from bench.harness import SERVICE_FAILURES, benchmark_main
from bench.options import numbers_arguments
from bench.order_erp import OrderStage, order_stage
from bench.order_load import ORDERS_QUEUE, PUSH_QUEUE, make_orders, publish_orders
from bench.order_phases import wait_synced
from bench.orders import ORDERS_WORKER_QUEUES
from bench.phases import progress
from bench.servers import ServerFailed
from bench.worker_procs import workers_running

START_UNDER_CALLGRIND_S = 600.0  # imports run some 50 times slower
# callgrind_control -e: a line a thread, "Th 9  1,234" then "Th10  1,234".
_THREAD_COUNT = re.compile(r"^\s*Th\s*\d+\s+(\d[\d,]*)\s*$", re.MULTILINE)

parse_args = numbers_arguments("Count the instructions an order costs one and two orders workers (callgrind).", [
    ("--orders", 600, "orders drained in each phase"),
    ("--skus", 200, "SKUs in the sandbox ERP's catalog"),
    ("--drain-timeout", 1800.0, "give a drain up after this many seconds"),
])


def counted_drain(stage: OrderStage, engine: Engine, processes: int, orders: int, timeout_s: float) -> int:
    """Instructions the `processes` workers executed from consuming an empty queue until `orders` were synced."""
    prefix = f"CG-{processes}W-"
    empty_tables(engine)
    for queue in (ORDERS_QUEUE, PUSH_QUEUE):
        queues.purge(stage.amqp_url, queue)
    # The counters are read while the workers run: whatever their stop takes, nothing is lost.
    with workers_running("orders", processes, stage.env, stage.work_dir, prefix,
                         under=("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null")) as workers:
        workers.wait_consuming(ORDERS_WORKER_QUEUES, timeout_s=START_UNDER_CALLGRIND_S)
        for worker in workers.processes:
            _callgrind_control("--zero", worker.pid)
        publish_orders(stage.amqp_url, make_orders(prefix, orders, stage.skus))
        drain = wait_synced(engine, prefix, orders, time.monotonic(), timeout_s, workers.check_alive)
        counted = sum(_instructions(worker.pid) for worker in workers.processes)
    progress(f"{processes} worker(s) under callgrind: {drain.processed} orders synced in {drain.elapsed_s:.0f} s, "
             f"{counted / drain.processed / 1e6:.2f} M instructions an order")
    return counted


def _callgrind_control(option: str, pid: int) -> str:
    return subprocess.run(["callgrind_control", option, str(pid)], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def _instructions(pid: int) -> int:
    # `-e` lists the threads alive now: the worker's threads live as long as it does.
    return instructions_shown(_callgrind_control("-e", pid))


def instructions_shown(shown: str) -> int:
    """The instructions of every thread in `callgrind_control -e`'s answer, since the counters were zeroed."""
    counts = _THREAD_COUNT.findall(shown)
    if not counts:
        raise ServerFailed(f"callgrind_control showed no instruction count:\n{shown}")
    return sum(int(count.replace(",", "")) for count in counts)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The sandbox ERP, a vhost and a database; one worker's drain counted, then two workers'; the figures."""
    with ExitStack() as stack:
        stage = order_stage(stack, args.skus, 1_000_000, {}, erp_keep_alive=True)
        engine = bench_engine(stage.settings.database_url)
        stack.callback(engine.dispose)
        per_order = {processes: counted_drain(stage, engine, processes, args.orders, args.drain_timeout) / args.orders
                     for processes in (1, 2)}
    return {
        "benchmark": "orders_instructions",
        "instructions_per_order_1w": round(per_order[1]),
        "instructions_per_order_2w": round(per_order[2]),
        "ratio_2w_1w": round(per_order[2] / per_order[1], 3),
        "orders": args.orders, "skus": args.skus,
        "method": "callgrind's instruction counters of every `erp-sync worker orders` process, zeroed once it "
                  "consumes an empty queue, read when every order published after is synced; sandbox ERP "
                  "keeping connections alive",
    }


main = benchmark_main(parse_args, run, ("instructions_per_order_1w", "instructions_per_order_2w", "ratio_2w_1w"),
                      SERVICE_FAILURES)


if __name__ == "__main__":
    sys.exit(main())
