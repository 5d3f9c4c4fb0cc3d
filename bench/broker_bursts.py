"""RabbitMQ's CPU window by window while a phase runs: a latency tail that lines up with a burst is the broker's.

A quorum queue node writes its write-ahead log out to the queues' segments each time the log
reaches `raft.wal_max_size_bytes` (512 MiB by default), and for most of a second it can take every
core of a small machine; publishers wait for their confirms meanwhile.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bench.cpu import broker_cpu_s, broker_pids

WINDOW_S = 0.1
BUSY_SHARE = 0.5  # a window in which RabbitMQ took more than half of the machine


@dataclass
class Bursts:
    """RabbitMQ's CPU seconds in each window of about WINDOW_S (its length measured), on `cpus` cores."""

    cpus: int
    windows: list[tuple[float, float]] = field(default_factory=list)  # (seconds long, CPU seconds)

    @property
    def shares(self) -> list[float]:
        """Each window's share of the machine's CPU that RabbitMQ took (CPU time comes in 10 ms ticks)."""
        return [spent / (length * self.cpus) for length, spent in self.windows if length > 0]

    @property
    def peak_share(self) -> float:
        return max(self.shares, default=0.0)

    @property
    def busy_windows(self) -> int:
        return sum(1 for share in self.shares if share > BUSY_SHARE)


@contextmanager
def watching_the_broker() -> Iterator[Bursts]:
    """Sample RabbitMQ's CPU every WINDOW_S until the block ends; the windows are filled in by then."""
    bursts, done, pids = Bursts(os.cpu_count() or 1), threading.Event(), broker_pids()

    def sample() -> None:
        at, spent = time.monotonic(), broker_cpu_s(pids)
        while not done.wait(WINDOW_S):
            now, spent_now = time.monotonic(), broker_cpu_s(pids)
            bursts.windows.append((now - at, spent_now - spent))
            at, spent = now, spent_now

    sampler = threading.Thread(target=sample, name="broker-bursts", daemon=True)
    sampler.start()
    try:
        yield bursts
    finally:
        done.set()
        sampler.join()
