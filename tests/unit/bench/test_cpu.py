"""Reading a process's context switches from /proc."""
from __future__ import annotations

import os
import time
from pathlib import Path

from bench.cpu import context_switches


def test_a_thread_that_sleeps_counts_a_context_switch_each_time():
    # given this process's count so far
    before = context_switches(os.getpid())

    # when it sleeps three times, then each sleep gave the core up at least once
    for _ in range(3):
        time.sleep(0.001)
    assert context_switches(os.getpid()) >= before + 3


def test_a_process_that_is_not_there_counts_none():
    # pids stay below pid_max: no process ever has that one
    absent = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert context_switches(absent) == 0
