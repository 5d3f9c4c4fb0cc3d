"""What the same work costs in CPU when both cores are busy, against one core busy: the machine's own share of two workers' extra cost.

Issue 19 asks that two processes of a worker spend no more CPU a unit than one. On this two-core
machine a second worker also keeps both cores busy where one left the second core partly idle, and
a core's instructions may then cost more (shared caches, memory bandwidth, a hypervisor's sibling
threads). This measures that apart from erp-sync: a fixed piece of work, run by one process alone,
then by two at once, CPU time a repetition from `time.process_time`. Two kinds of work:

- `compute`: arithmetic on a few objects, all in the core's own caches;
- `memory`: random reads of a dict of `--keys` entries (tens of MB), as a worker's and PostgreSQL's
  work touches more than the caches hold;
- `allocate`: building and dropping such a dict, as a worker builds and drops the objects of every
  message (the allocator, fresh pages from the kernel).

The two alternate for `--rounds`, so the machine's drift falls on both alike. One JSON line goes to
stdout; `*_ratio` is two at once against one alone (1: no contention), the median of the rounds:

    .venv/bin/python -m bench.contention [--rounds 5] [--repeats 6] [--keys 400000]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from statistics import median
from multiprocessing.synchronize import Barrier

from bench.report import python_yardstick_ms

COMPUTE_STEPS = 3_000_000
MEMORY_PASSES = 4


def compute_work(_: object) -> None:
    total = 0
    for step in range(COMPUTE_STEPS):
        total += step * step % 7


def memory_work(table: dict[int, str]) -> None:
    keys = list(table)
    random.Random(1).shuffle(keys)
    for _ in range(MEMORY_PASSES):
        for key in keys:
            len(table[key])


def allocate_work(table: dict[int, str]) -> None:
    {key: str(key) for key in range(len(table))}


def _repeat(kind: str, keys: int, repeats: int, start: Barrier, results: multiprocessing.Queue) -> None:
    """In a process of its own: build the work's data, wait for the others, then time each repetition."""
    work: Callable[[dict[int, str]], None] = WORK[kind]
    table = {key: str(key) for key in range(keys)} if kind != "compute" else {}
    start.wait()
    for _ in range(repeats):
        started = time.process_time()
        work(table)
        results.put(time.process_time() - started)


WORK: dict[str, Callable[[dict[int, str]], None]] = {
    "compute": compute_work, "memory": memory_work, "allocate": allocate_work}


def cpu_ms_a_repetition(kind: str, processes: int, keys: int, repeats: int) -> float:
    """Mean CPU milliseconds of one repetition of `kind` while `processes` run it at once."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(processes)
    results: multiprocessing.Queue = context.Queue()
    runners = [context.Process(target=_repeat, args=(kind, keys, repeats, start, results))
               for _ in range(processes)]
    for runner in runners:
        runner.start()
    times = [results.get() for _ in range(processes * repeats)]
    for runner in runners:
        runner.join()
    return 1000 * sum(times) / len(times)


def figures(args: argparse.Namespace) -> dict[str, object]:
    """Rounds of one alone then two at once, for each kind of work: the median ratio and its range."""
    line: dict[str, object] = {"benchmark": "contention", "date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "cores": multiprocessing.cpu_count()}
    for kind in WORK:
        rounds = [(cpu_ms_a_repetition(kind, 1, args.keys, args.repeats),
                   cpu_ms_a_repetition(kind, 2, args.keys, args.repeats)) for _ in range(args.rounds)]
        ratios = sorted(both / alone for alone, both in rounds)
        line |= {f"{kind}_alone_ms": round(median(alone for alone, _ in rounds), 1),
                 f"{kind}_two_at_once_ms": round(median(both for _, both in rounds), 1),
                 f"{kind}_ratio": round(median(ratios), 3),
                 f"{kind}_ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)]}
    return line | {"keys": args.keys, "repeats": args.repeats, "rounds": args.rounds,
                   "python_yardstick_ms": python_yardstick_ms()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="timed repetitions per process (6)")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of one alone and two at once (5)")
    parser.add_argument("--keys", type=int, default=400_000, help="entries of the memory work's dict (400,000)")
    print(json.dumps(figures(parser.parse_args())))


if __name__ == "__main__":
    main()
