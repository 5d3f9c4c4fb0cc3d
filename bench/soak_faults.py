"""The soak's fault schedule: kill and restart each kind of process, cut the broker and the database, upset the ERP."""
from __future__ import annotations

import random
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from sqlalchemy import Engine, text

from bench.phases import progress
from bench.soak_system import KINDS, System

# Beyond the soak's ERP_READ_TIMEOUT_S: the orders worker gives up, and the ERP takes the order later.
HANG_MS = 8_000
# How the ERP misbehaves: connections dropped, 5xx, answers slower than the read timeout, and
# the order taken but the answer lost on the way back.
ERP_MODES: dict[str, dict[str, Any]] = {"down": {"mode": "down"}, "5xx": {"mode": "5xx", "status": 503},
             "hang": {"mode": "slow", "delay_ms": HANG_MS}, "lost": {"mode": "lost"}}
FAULTS = (*(f"kill:{kind}" for kind in KINDS), "broker:close_connections", "database:terminate_backends",
          *(f"erp:{mode}" for mode in ERP_MODES))
ERP_FAULT_S = 4.0


@dataclass
class FaultSchedule:
    """One fault every `every_s`, going through every kind in a shuffled round before repeating."""

    system: System
    amqp_url: str
    engine: Engine
    erp_url: str
    admin_token: str
    every_s: float
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    def run(self, stop: threading.Event, end: threading.Event) -> None:
        """Strike until `stop`; then stay until `end`: what this thread started dies with it (PDEATHSIG)."""
        try:
            self._strike(stop)
        finally:
            self.finished.set()
        end.wait()

    def _strike(self, stop: threading.Event) -> None:
        rng = random.Random(18)
        round_: list[str] = []
        while not stop.wait(self.every_s):
            if not round_:
                round_ = list(FAULTS)
                rng.shuffle(round_)
            fault = round_.pop()
            try:
                self.inject(fault, stop)
                self.counts[fault] += 1
            except Exception as exc:  # noqa: BLE001 (a fault that could not be injected is reported, not fatal)
                self.failures.append(f"{fault}: {exc}")
                progress(f"fault {fault} failed: {exc}")
        self.erp_mode({"mode": "none"})

    def inject(self, fault: str, stop: threading.Event) -> None:
        kind, _, what = fault.partition(":")
        if kind == "kill":
            self.system.kill_and_restart(what)
        elif kind == "broker":
            vhost = unquote(urlsplit(self.amqp_url).path.lstrip("/"))
            subprocess.run(["rabbitmqctl", "-q", "close_all_connections", "--vhost", vhost, "soak fault"],
                           capture_output=True, text=True, check=True, timeout=60)
        elif kind == "database":
            with self.engine.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        else:
            self.erp_mode(ERP_MODES[what])
            stop.wait(ERP_FAULT_S)
            self.erp_mode({"mode": "none"})

    def erp_mode(self, state: dict[str, Any]) -> None:
        answer = requests.put(f"{self.erp_url}/admin/faults", json=state,
                              headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=10)
        answer.raise_for_status()
