"""Fault injection on the spec endpoints: down, 5xx, slow, lost answers, and SKUs rejected with 400."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field, replace

from flask import Response, current_app, request

from erp_sync.sandbox_erp.errors import ApiError


@dataclass(frozen=True)
class FaultState:
    """The faults in force; `none` serves normally."""

    mode: str = "none"  # none | down | 5xx | slow | lost
    status: int = 503
    delay_ms: int = 0
    reject_skus: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, object]:
        """The state as the admin API shows it."""
        return {"mode": self.mode, "status": self.status, "delay_ms": self.delay_ms,
                "reject_skus": sorted(self.reject_skus)}


class Faults:
    """The current fault state, swapped whole so request threads never see half an update."""

    def __init__(self) -> None:
        self._state = FaultState()
        self._lock = threading.Lock()

    @property
    def state(self) -> FaultState:
        """The state in force now."""
        return self._state

    def set(self, mode: str, status: int, delay_ms: int, reject_skus: list[str]) -> FaultState:
        """Replace the fault state."""
        with self._lock:
            self._state = replace(FaultState(), mode=mode, status=status, delay_ms=delay_ms,
                                  reject_skus=frozenset(reject_skus))
            return self._state


def _drop_connection() -> Response:
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        # The client sees its connection reset with no answer, as from an ERP that is down;
        # werkzeug treats the failed write that follows as a dropped connection and stays quiet.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    # Under a server without a raw socket (gunicorn) "down" degrades to 503 and a closed connection.
    return Response('{"error": "ERP is down"}', status=503, headers={"Connection": "close"},
                    mimetype="application/json")


def before_spec_request() -> Response | None:
    """Apply the faults in force to a spec endpoint, before its view runs."""
    state: FaultState = current_app.extensions["sandbox_erp.faults"].state
    if state.mode == "down":
        return _drop_connection()
    if state.mode == "5xx":
        return Response('{"error": "injected fault"}', status=state.status, mimetype="application/json")
    if state.mode == "slow":
        time.sleep(state.delay_ms / 1000)
    return None


def after_spec_request(response: Response) -> Response:
    """In `lost` mode the ERP has done the work (the order is taken), but its answer never arrives."""
    state: FaultState = current_app.extensions["sandbox_erp.faults"].state
    return _drop_connection() if state.mode == "lost" else response


def reject_skus(skus: list[str]) -> None:
    """Refuse a body naming a SKU chosen for rejection."""
    state: FaultState = current_app.extensions["sandbox_erp.faults"].state
    chosen = sorted(set(skus) & state.reject_skus)
    if chosen:
        raise ApiError(400, "sku rejected by the ERP", [{"sku": sku} for sku in chosen])
