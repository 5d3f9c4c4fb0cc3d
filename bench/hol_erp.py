"""The sandbox ERP's admin API as the head-of-line benchmark uses it: faults, held requests, orders taken."""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests

ADMIN_TIMEOUT_S = 10.0


class ErpWatch:
    """Switch the sandbox's faults, count the requests it holds up, and see which orders it has taken."""

    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url.rstrip("/")
        self._session = requests.Session()  # keep-alive: a poll costs one request, not a connection
        self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def fault(self, mode: str, delay_ms: int = 0, slow_skus: list[str] | None = None) -> None:
        body: dict[str, Any] = {"mode": mode, "delay_ms": delay_ms, "reject_skus": [], "slow_skus": slow_skus or []}
        self._session.put(f"{self._base}/admin/faults", json=body, timeout=ADMIN_TIMEOUT_S).raise_for_status()

    def held(self) -> int:
        answer = self._session.get(f"{self._base}/admin/faults", timeout=ADMIN_TIMEOUT_S)
        answer.raise_for_status()
        return int(answer.json()["held"])

    def taken(self) -> Counter[str]:
        """How many times the ERP took each order id."""
        answer = self._session.get(f"{self._base}/admin/orders", timeout=ADMIN_TIMEOUT_S)
        answer.raise_for_status()
        return Counter(str(item["order_id"]) for item in answer.json())

    def wait(self, check: Callable[[], bool], what: str, timeout_s: float, poll_s: float,
             alive: Callable[[], None]) -> float:
        """Poll `check` every `poll_s`; the monotonic time it first held. Raises RuntimeError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not within {timeout_s:g} s")
            alive()
            time.sleep(poll_s)
        return time.monotonic()
