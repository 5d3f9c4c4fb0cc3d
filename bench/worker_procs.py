"""`erp-sync worker` subprocesses for one benchmark phase, stopped however the phase ends."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import process_cpu_s
from bench.servers import ServerFailed, log_tail, spawn, stop, worker_command


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

    def count_in_logs(self, fragment: str) -> int:
        """Log lines holding `fragment` over all the processes (retries, parked messages)."""
        return sum(line.count(fragment) for log in self.logs for line in log.read_text(errors="replace").splitlines())


@contextmanager
def workers_running(name: str, count: int, env: dict[str, str], log_dir: Path, tag: str) -> Iterator[Workers]:
    """Start `count` processes of `erp-sync worker <name>` without waiting for them to connect."""
    workers = Workers(name, [], [log_dir / f"worker-{name}-{tag}-{n}.log" for n in range(count)])
    try:
        for log in workers.logs:
            workers.processes.append(spawn(worker_command(name), env, log))
        yield workers
    finally:
        for process in workers.processes:
            stop(process)
