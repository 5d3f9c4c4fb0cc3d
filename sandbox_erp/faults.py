"""Fault injection on the spec endpoints: down, 5xx (or 429, with a Retry-After if asked), slow, lost
answers, and SKUs rejected with 400.

`slow` with `slow_skus` holds up only the orders naming one of those SKUs (one order's import hanging
at the ERP while the others go through). A held request waits out its delay, or until the fault
state is switched again: switching ends every wait under way, so a test or an operator can let a
hanging order go at the moment of their choosing.
"""
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
    retry_after_s: int | None = None  # `5xx`: sent as Retry-After
    delay_ms: int = 0
    reject_skus: frozenset[str] = field(default_factory=frozenset)
    slow_skus: frozenset[str] = field(default_factory=frozenset)  # `slow` only for these; empty: for all

    def as_dict(self) -> dict[str, object]:
        """The state as the admin API shows it."""
        return {"mode": self.mode, "status": self.status, "retry_after_s": self.retry_after_s, "delay_ms": self.delay_ms,
                "reject_skus": sorted(self.reject_skus), "slow_skus": sorted(self.slow_skus)}


class Faults:
    """The current fault state, swapped whole so request threads never see half an update."""

    def __init__(self) -> None:
        self._state = FaultState()
        self._switched = threading.Condition()
        self.held = 0  # requests waiting in `slow` now; changed under `_switched`

    @property
    def state(self) -> FaultState:
        """The state in force now."""
        return self._state

    def set(self, mode: str, status: int, delay_ms: int, reject_skus: list[str],
            slow_skus: list[str] | None = None, retry_after_s: int | None = None) -> FaultState:
        """Replace the fault state; the requests held by `slow` go on at once."""
        with self._switched:
            self._state = replace(FaultState(), mode=mode, status=status, retry_after_s=retry_after_s,
                                  delay_ms=delay_ms, reject_skus=frozenset(reject_skus),
                                  slow_skus=frozenset(slow_skus or ()))
            self._switched.notify_all()
            return self._state

    def hold(self, state: FaultState) -> None:
        """Wait `state.delay_ms`, or less if the state is switched meanwhile."""
        deadline = time.monotonic() + state.delay_ms / 1000
        with self._switched:
            self.held += 1
            try:
                while self._state is state and (left := deadline - time.monotonic()) > 0:
                    self._switched.wait(left)
            finally:
                self.held -= 1


def _drop_connection() -> Response:
    sock = request.environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        # The client sees its connection reset with no answer, as from an ERP that is down;
        # werkzeug treats the failed write that follows as a dropped connection and stays quiet.
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    # Under a server without a raw socket (granian, `--keep-alive`) "down" degrades to 503 and a closed connection.
    return Response('{"error": "ERP is down"}', status=503, headers={"Connection": "close"},
                    mimetype="application/json")


def before_spec_request() -> Response | None:
    """Apply the faults in force to a spec endpoint, before its view runs."""
    faults: Faults = current_app.extensions["sandbox_erp.faults"]
    state = faults.state
    if state.mode == "down":
        return _drop_connection()
    if state.mode == "5xx":
        asked = {} if state.retry_after_s is None else {"Retry-After": str(state.retry_after_s)}
        return Response('{"error": "injected fault"}', status=state.status, headers=asked,
                        mimetype="application/json")
    if state.mode == "slow" and not state.slow_skus:
        faults.hold(state)
    return None


def after_spec_request(response: Response) -> Response:
    """In `lost` mode the ERP has done the work (the order is taken), but its answer never arrives."""
    state: FaultState = current_app.extensions["sandbox_erp.faults"].state
    return _drop_connection() if state.mode == "lost" else response


def sku_faults(skus: list[str]) -> None:
    """Hold up a body naming a SKU chosen for `slow`; refuse one naming a SKU chosen for rejection."""
    faults: Faults = current_app.extensions["sandbox_erp.faults"]
    state = faults.state
    if state.mode == "slow" and state.slow_skus & set(skus):
        faults.hold(state)
        state = faults.state  # a switch may have ended the wait: the faults in force now decide the rest
    chosen = sorted(set(skus) & state.reject_skus)
    if chosen:
        raise ApiError(400, "sku rejected by the ERP", [{"sku": sku} for sku in chosen])
