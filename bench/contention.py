"""What the same work costs in CPU when both cores are busy, against one core busy: the machine's own share of two workers' extra cost.

Issue 19 asks that two processes of a worker spend no more CPU a unit than one. On this two-core
machine a second worker also keeps both cores busy where one left the second core partly idle, and
a core's instructions may then cost more (shared caches, memory bandwidth, a hypervisor's sibling
threads). This measures that apart from erp-sync: a fixed piece of work, run by one process alone,
then by two at once, CPU time a repetition from `time.process_time`. Three kinds of work, each on
`--size` items prepared before the clock starts:

- `compute`: arithmetic on a few objects, all in the core's own caches;
- `memory`: reads of a dict of that many entries (tens of MB) in a shuffled order, as a worker's
  and PostgreSQL's work touches more than the caches hold;
- `allocate`: building and dropping such a dict, as a worker builds and drops the objects of every
  message (the allocator, fresh pages from the kernel).

The two alternate for `--rounds`, so the machine's drift falls on both alike. One JSON line goes to
stdout; `*_ratio` is two at once against one alone (1: no contention), the median of the rounds:

    .venv/bin/python -m bench.contention [--rounds 5] [--repeats 6] [--size 400000]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from statistics import median

from bench.report import python_yardstick_ms

MEMORY_PASSES = 4
COMPUTE_STEPS_AN_ITEM = 8  # 400,000 items: about as long as one pass of the memory work
RESULT_TIMEOUT_S = 300.0


def _compute(size: int) -> Callable[[], object]:
    steps = size * COMPUTE_STEPS_AN_ITEM

    def work() -> int:
        total = 0
        for step in range(steps):
            total += step * step % 7
        return total
    return work


def _memory(size: int) -> Callable[[], object]:
    table = {key: str(key) for key in range(size)}
    order = list(table)
    random.Random(1).shuffle(order)

    def work() -> int:
        total = 0
        for _ in range(MEMORY_PASSES):
            for key in order:
                total += len(table[key])
        return total
    return work


def _allocate(size: int) -> Callable[[], object]:
    def work() -> int:
        return len({key: str(key) for key in range(size)})
    return work


# Each prepares its data and returns the work to time.
WORK: dict[str, Callable[[int], Callable[[], object]]] = {"compute": _compute, "memory": _memory, "allocate": _allocate}


def _repeat(kind: str, size: int, repeats: int, start: Barrier, results: Queue[float]) -> None:
    """In a process of its own: prepare the work, wait for the others, then time each repetition."""
    work = WORK[kind](size)
    start.wait()
    for _ in range(repeats):
        started = time.process_time()
        work()
        results.put(time.process_time() - started)


def cpu_ms_a_repetition(kind: str, processes: int, size: int, repeats: int) -> list[float]:
    """CPU milliseconds of each repetition of `kind` while `processes` run it at once, every process's."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(processes)
    results: Queue[float] = context.Queue()
    runners = [context.Process(target=_repeat, args=(kind, size, repeats, start, results)) for _ in range(processes)]
    for runner in runners:
        runner.start()
    try:
        return [1000 * results.get(timeout=RESULT_TIMEOUT_S) for _ in range(processes * repeats)]
    finally:
        for runner in runners:
            runner.join(timeout=RESULT_TIMEOUT_S)


def figures(args: argparse.Namespace) -> dict[str, object]:
    """Rounds of one alone then two at once, for each kind of work: the median ratio and its range."""
    line: dict[str, object] = {"benchmark": "contention", "date": datetime.now(UTC).isoformat(timespec="seconds"),
                               "cores": multiprocessing.cpu_count()}
    for kind in WORK:
        rounds = [(median(cpu_ms_a_repetition(kind, 1, args.size, args.repeats)),
                   median(cpu_ms_a_repetition(kind, 2, args.size, args.repeats))) for _ in range(args.rounds)]
        ratios = sorted(both / alone for alone, both in rounds)
        line |= {f"{kind}_alone_ms": round(median(alone for alone, _ in rounds), 1),
                 f"{kind}_two_at_once_ms": round(median(both for _, both in rounds), 1),
                 f"{kind}_ratio": round(median(ratios), 3),
                 f"{kind}_ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)]}
    return line | {"size": args.size, "repeats": args.repeats, "rounds": args.rounds,
                   "python_yardstick_ms": python_yardstick_ms()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations of one alone and two at once (5)")
    parser.add_argument("--repeats", type=int, default=6, help="timed repetitions per process (6)")
    parser.add_argument("--size", type=int, default=400_000, help="items each kind of work handles (400,000)")
    print(json.dumps(figures(parser.parse_args())))


if __name__ == "__main__":
    main()
