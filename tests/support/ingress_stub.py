"""A stand-in for our ingress: answers from a script and records what arrived, and when."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from flask import Flask, request


@dataclass
class Arrival:
    at: float
    body: bytes
    headers: dict[str, str]


@dataclass
class IngressStub:
    statuses: list[int] = field(default_factory=list)  # answered in turn; the last one repeats
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("ingress_stub")

        @app.post("/webhooks/erp")
        def receive():
            with self.lock:
                self.arrivals.append(Arrival(time.time(), request.get_data(), dict(request.headers)))
                index = min(len(self.arrivals), len(self.statuses)) - 1
                status = self.statuses[index] if self.statuses else 202
            return {"status": "stub"}, status

        return app

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Arrival]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.arrivals) >= count:
                    return list(self.arrivals)
            time.sleep(0.005)
        raise AssertionError(f"{len(self.arrivals)} arrivals, wanted {count}")
