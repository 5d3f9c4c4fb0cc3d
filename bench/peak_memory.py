"""A command's peak resident memory, as the kernel reports it when the command's process is reaped."""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO

from bench.servers import REPO

# Linux starts a child's ru_maxrss at the size of the process it was spawned from (execve keeps the
# larger), and a benchmark's own process is large: a small launcher starts the command, reaps it,
# and adds its peak (KiB) to stderr as the last line.
LAUNCHER = """
import os, signal, subprocess, sys
command = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGALRM, lambda *_: command.kill())
signal.alarm(int(sys.argv[1]))
_, status, usage = os.wait4(command.pid, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measured:
    """How a command ended: its exit code, output (None when discarded), log, peak memory and wall seconds."""

    returncode: int
    stdout: str | None
    log: str
    peak_mb: float
    seconds: float


def run_measured(command: list[str], env: dict[str, str], timeout_s: int, keep_stdout: bool = True,
                 succeeded: tuple[int, ...] = (0,)) -> Measured:
    """Run `command` to its end (killed after `timeout_s`): its output and its process's peak resident memory.

    Raises:
        RuntimeError: it exited with a code not in `succeeded`; the message ends with its log.
    """
    stdout: int | IO[str] = subprocess.PIPE if keep_stdout else subprocess.DEVNULL
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(timeout_s), *command], env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, check=False, cwd=REPO)
    seconds = round(time.monotonic() - started, 2)
    log, _, peak_kib = done.stderr.rstrip().rpartition("\n")
    if done.returncode not in succeeded:
        raise RuntimeError(f"{' '.join(command[1:])} exited {done.returncode}:\n{log[-3000:]}")
    return Measured(done.returncode, done.stdout, log, round(int(peak_kib) / 1024, 1), seconds)
