"""A command's peak resident memory, as the kernel reports it when the command's process is reaped."""
from __future__ import annotations

import subprocess
import sys
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
    """How a command ended: its exit code, output (None when discarded), log and peak memory."""

    returncode: int
    stdout: str | None
    log: str
    peak_mb: float


def run_measured(command: list[str], env: dict[str, str], timeout_s: int, keep_stdout: bool = True) -> Measured:
    """Run `command` to its end (killed after `timeout_s`); its output and its process's peak resident memory."""
    stdout: int | IO[str] = subprocess.PIPE if keep_stdout else subprocess.DEVNULL
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(timeout_s), *command], env=env, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, check=False, cwd=REPO)
    log, _, peak_kib = done.stderr.rstrip().rpartition("\n")
    return Measured(done.returncode, done.stdout, log, int(peak_kib) / 1024)
