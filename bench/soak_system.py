"""The whole system as the soak runs it: the sandbox ERP, the ingress, the API and every worker, as processes.

Each process runs as production runs it (`erp-sync ...`), in a process group of its own, so a
fault can SIGKILL it (and whatever it forked) and start it again.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.phases import progress
from bench.servers import (
    ServerFailed,
    api_command,
    ingress_command,
    log_tail,
    spawn,
    stop,
    wait_until_answering,
    worker_command,
    worker_env,
)
from erp_sync.workers.registry import WORKERS

# Every kind of erp-sync process; the soak kills and restarts each.
KINDS = ("ingress", "api", *WORKERS)


@dataclass
class Service:
    """One process of the system, with what it takes to start it again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_dir: Path
    port: int | None = None
    starts: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"{self.name}-{self.starts}.log"
        self.process = spawn(self.command, self.env, log)
        if self.port is not None:
            try:
                wait_until_answering(self.process, self.port, log, self.name)
            except ServerFailed:
                self.kill()  # one that never answered is no server: the next start begins afresh
                raise

    def kill(self) -> None:
        """SIGKILL the process and everything it forked."""
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def last_log(self) -> str:
        return log_tail(self.log_dir / f"{self.name}-{self.starts}.log")


@dataclass
class System:
    """erp-sync's processes on one vhost and database; the sandbox ERP runs beside them, never killed."""

    services: dict[str, Service] = field(default_factory=dict)
    unplanned_restarts: Counter[str] = field(default_factory=Counter)
    failed_starts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(cls, env: dict[str, str], log_dir: Path, ingress_port: int, api_port: int) -> System:
        services = {
            "ingress": Service("ingress", ingress_command(ingress_port), env, log_dir, ingress_port),
            "api": Service("api", api_command(api_port), env, log_dir, api_port),
        }
        for name in WORKERS:
            services[name] = Service(name, worker_command(name), worker_env(env), log_dir)
        return cls(services)

    def start_all(self) -> None:
        for service in self.services.values():
            service.start()

    def kill_and_restart(self, name: str) -> None:
        """SIGKILL one process, then start it again, as an orchestrator would."""
        with self._lock:
            service = self.services[name]
            service.kill()
            time.sleep(0.5)
            service.start()

    def restart_dead(self) -> None:
        """Start again whatever exited on its own (the orchestrator's restart policy), counting each.

        A start that fails is counted and tried again at the next round, as an orchestrator's would
        be: raised, it would end the supervision, and whatever died after it would stay dead.
        """
        with self._lock:
            for name, service in self.services.items():
                if not service.alive():
                    self.unplanned_restarts[name] += 1
                    try:
                        service.start()
                    except (ServerFailed, OSError) as exc:
                        self.failed_starts[name] += 1
                        progress(f"{name} did not start again ({exc}); trying again")

    def supervise(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.restart_dead()

    def stop_all(self) -> None:
        for service in self.services.values():
            service.stop()
