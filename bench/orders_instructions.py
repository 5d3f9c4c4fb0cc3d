"""Instructions an order costs the orders workers, one process against two, counted by valgrind's callgrind.

CPU time per order moves with how busy and how idle the machine is, and this VM exposes no hardware
counters: two workers' extra CPU time could be more work or the same work run slower. Instructions
tell the two apart, and their count does not drift with the machine. Each phase pre-fills a small
and a large batch of orders and drains each with the workers under callgrind (sandbox ERP keeping
connections alive); the difference between the two drains, over the difference in orders, is an
order's cost with the start-up and the stop taken out. The one-worker figure is the baseline:

    .venv/bin/python -m bench.orders_instructions [--small 200] [--large 800] [--baseline FILE]

Slow (callgrind runs Python about 50 times slower): minutes, never in CI.
"""
from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bench import queues
from bench.drain import bench_engine, empty_tables
from bench.harness import SERVICE_FAILURES, benchmark_main
from bench.options import numbers_arguments
from bench.order_erp import OrderStage, order_stage
from bench.order_load import ORDERS_QUEUE, PUSH_QUEUE, make_orders, prefill_orders
from bench.order_phases import wait_synced
from bench.phases import progress
from bench.servers import ServerFailed, log_tail, spawn, worker_env

STOP_TIMEOUT_S = 600.0  # a graceful stop under callgrind, which writes its counts at the exit
_TOTALS = re.compile(rb"^(?:totals|summary): (\d+)", re.MULTILINE)

parse_args = numbers_arguments("Count the instructions an order costs one and two orders workers (callgrind).", [
    ("--small", 200, "orders of the small drain of each phase"),
    ("--large", 800, "orders of the large drain of each phase"),
    ("--skus", 200, "SKUs in the sandbox ERP's catalog"),
    ("--drain-timeout", 1800.0, "give a drain up after this many seconds"),
])


def counted_drain(stage: OrderStage, engine: Engine, processes: int, orders: int, timeout_s: float) -> int:
    """Instructions the `processes` workers executed, start to exit, draining `orders` pre-filled orders."""
    prefix = f"CG-{processes}W-{orders}-"
    empty_tables(engine)
    for queue in (ORDERS_QUEUE, PUSH_QUEUE):
        queues.purge(stage.amqp_url, queue)
    prefill_orders(stage.amqp_url, make_orders(prefix, orders, stage.skus))
    outputs = [stage.work_dir / f"callgrind-{prefix}{n}.out" for n in range(processes)]
    logs = [stage.work_dir / f"callgrind-{prefix}{n}.log" for n in range(processes)]
    workers = [spawn(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                      sys.executable, "-m", "erp_sync", "worker", "orders"], worker_env(stage.env), log)
               for out, log in zip(outputs, logs, strict=True)]
    try:
        def alive() -> None:
            for worker, log in zip(workers, logs, strict=True):
                if worker.poll() is not None:
                    raise ServerFailed(f"worker under callgrind exited with {worker.returncode}:\n{log_tail(log)}")

        drain = wait_synced(engine, prefix, orders, time.monotonic(), timeout_s, alive)
        progress(f"{processes} worker(s) under callgrind: {drain.processed} orders synced in {drain.elapsed_s:.0f} s")
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
    return sum(_instructions(out) for out in outputs)


def _instructions(out: Path) -> int:
    found = _TOTALS.search(out.read_bytes())
    if found is None:
        raise ServerFailed(f"no instruction count in {out}")
    return int(found.group(1))


def run(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        stage = order_stage(stack, args.skus, 1_000_000, {}, erp_keep_alive=True)
        engine = bench_engine(stage.settings.database_url)
        stack.callback(engine.dispose)
        per_order: dict[int, float] = {}
        for processes in (1, 2):
            small = counted_drain(stage, engine, processes, args.small, args.drain_timeout)
            large = counted_drain(stage, engine, processes, args.large, args.drain_timeout)
            per_order[processes] = (large - small) / (args.large - args.small)
            progress(f"{processes} worker(s): {per_order[processes] / 1e6:.2f} M instructions an order")
    return {
        "benchmark": "orders_instructions",
        "instructions_per_order_1w": round(per_order[1]),
        "instructions_per_order_2w": round(per_order[2]),
        "ratio_2w_1w": round(per_order[2] / per_order[1], 3),
        "small": args.small, "large": args.large, "skus": args.skus,
        "method": "callgrind's instruction totals of every `erp-sync worker orders` process, start to exit, for a "
                  "drain of `large` and of `small` pre-filled orders; (large - small) / (orders large - small); "
                  "sandbox ERP keeping connections alive",
    }


main = benchmark_main(parse_args, run, ("instructions_per_order_1w", "instructions_per_order_2w", "ratio_2w_1w"),
                      SERVICE_FAILURES)


if __name__ == "__main__":
    sys.exit(main())
