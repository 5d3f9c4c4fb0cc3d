"""`erp-sync worker` subprocesses for one benchmark phase, stopped however the phase ends."""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import context_switches, process_cpu_s
from bench.servers import ServerFailed, log_tail, spawn, stop, worker_command, worker_env

CONSUMING_LOG = "consuming erp-sync."


@dataclass(frozen=True)
class Workers:
    """Running worker processes of one kind and their log files."""

    name: str
    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def check_alive(self) -> None:
        """Raise ServerFailed, with the log, if a worker has exited."""
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise ServerFailed(f"worker {self.name} exited with {process.returncode}:\n{log_tail(log)}")

    def cpu_s(self) -> float:
        """CPU seconds the processes have spent so far, start-up included."""
        return sum(process_cpu_s(process.pid) for process in self.processes)

    def context_switches(self) -> int:
        """Context switches of the processes' threads so far: each a wake-up, or a thread made to wait for a core."""
        return sum(context_switches(process.pid) for process in self.processes)

    def wait_consuming(self, queues: int, timeout_s: float = 60.0) -> None:
        """Wait until each process logs that it consumes its `queues` queues: its start-up is over."""
        deadline = time.monotonic() + timeout_s
        while self.count_in_logs(CONSUMING_LOG) < queues * len(self.processes):
            self.check_alive()
            if time.monotonic() > deadline:
                raise ServerFailed(f"worker {self.name} not consuming after {timeout_s:.0f} s:\n{log_tail(self.logs[0])}")
            time.sleep(0.05)

    def count_in_logs(self, fragment: str) -> int:
        """Log lines holding `fragment` over all the processes (retries, parked messages)."""
        return sum(line.count(fragment) for log in self.logs for line in log.read_text(errors="replace").splitlines())


@contextmanager
def workers_running(name: str, count: int, env: dict[str, str], log_dir: Path, tag: str,
                    under: Sequence[str] = (), pinned: bool = False) -> Iterator[Workers]:
    """Start `count` processes of `erp-sync worker <name>` without waiting for them to connect.

    `under`: a command the worker runs under (valgrind and its options, say). `pinned`: process n
    and all its threads run on the nth core this process may use only (modulo their number), as
    `taskset` sets it.
    """
    workers = Workers(name, [], [log_dir / f"worker-{name}-{tag}-{n}.log" for n in range(count)])
    cores = sorted(os.sched_getaffinity(0))
    try:
        for n, log in enumerate(workers.logs):
            pin = ("taskset", "--cpu-list", str(cores[n % len(cores)])) if pinned else ()
            workers.processes.append(spawn([*pin, *under, *worker_command(name)], worker_env(env), log))
        yield workers
    finally:
        for process in workers.processes:
            stop(process)


def startup_cpu_s(name: str, queues: int, env: dict[str, str], log_dir: Path) -> float:
    """CPU seconds one idle worker spends from its spawn until it consumes its `queues` queues, and a second after.

    Subtracted from a drain's CPU, it leaves the CPU per unit of work: with a few thousand units a
    run, a start-up of a second of imports is a tenth of the total.
    """
    with workers_running(name, 1, env, log_dir, "startup") as workers:
        workers.wait_consuming(queues)
        time.sleep(1.0)
        return workers.cpu_s()
