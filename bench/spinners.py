"""Processes that take only the CPU nothing else wants: a phase run on a machine kept fully busy.

A worker alone leaves part of the cores idle, and two workers fill them: their CPU a unit is then
compared across two machine states, not only across one process and two. Spinners at the lowest
priority fill the idle time and take little of a core another process wants (Linux's scheduler
gives nice 19 about 1.5% against nice 0), so one worker beside them runs on a machine as busy as
two workers make it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOWEST_PRIORITY = 19
SPIN = "while True: pass"


@contextmanager
def idle_cores_filled() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One lowest-priority busy loop per core this process may use, killed when the block ends."""
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in os.sched_getaffinity(0):
            spinners.append(subprocess.Popen(["nice", "-n", str(LOWEST_PRIORITY), sys.executable, "-c", SPIN]))
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
