"""The soak's load: the ERP's in-store sales, receipts and price changes, and a storefront placing orders.

Both run at a set rate until stopped. The storefront reads the API first and orders only what
it shows as available; every read is a sample of `available`.
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from erp_sync.shared.errors import BrokerUnavailable, PublishRejected
from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher

THREADS = 16
# Two moves of one SKU closer than this could carry the same millisecond stamp, and then the shop
# could not tell which is newer; the ERP's clock, not erp-sync, would be at fault.
SKU_SPACING_S = 0.003
# catalog.update is stamped in whole seconds: one group's changes are kept further apart than that.
GROUP_SPACING_S = 1.5
HTTP_TIMEOUT_S = 10.0


def paced(rate: float, stop: threading.Event, action: Callable[[int], None], threads: int = THREADS) -> None:
    """Call `action(n)` `rate` times a second from a pool until `stop`, never more than the pool keeps up with."""
    interval = 1 / rate
    started = time.monotonic()
    gate = threading.Semaphore(threads * 2)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        n = 0
        while not stop.is_set():
            wait = started + n * interval - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            gate.acquire()
            pool.submit(_released, gate, action, n)
            n += 1


def _released(gate: threading.Semaphore, action: Callable[[int], None], n: int) -> None:
    try:
        action(n)
    finally:
        gate.release()


@dataclass
class ErpActivity:
    """In-store sales and goods receipts (inventory.change) and price changes (catalog.update) in the ERP."""

    erp_url: str
    token: str
    skus: list[str]
    price_share: float = 0.02
    counts: Counter[str] = field(default_factory=Counter)
    moves: Counter[str] = field(default_factory=Counter)  # stock each SKU gained (receipts) or lost (sales)
    uncertain: int = 0  # moves whose answer never came: `moves` is then not exact
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _sku_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _last_move: dict[str, float] = field(default_factory=dict)
    _last_price: dict[str, float] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self._sku_locks = {sku: threading.Lock() for sku in self.skus}

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["Authorization"] = f"Bearer {self.token}"
        session: requests.Session = self._local.session
        return session

    def act(self, n: int) -> None:
        rng = random.Random(n)
        sku = rng.choice(self.skus)
        group = sku.rsplit("-", 1)[0]
        if rng.random() < self.price_share and self._claim_group(group):
            self._call("price", "/admin/price", {"sku": sku, "price": f"{rng.randint(1000, 9999) / 100:.2f}"})
            return
        with self._sku_locks[sku]:
            wait = self._last_move.get(sku, 0.0) + SKU_SPACING_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            change = -1 if rng.random() < 0.5 else rng.randint(1, 3)
            kind = "sale" if change < 0 else "receipt"
            if self._call(kind, f"/admin/{kind}", {"sku": sku, "quantity": abs(change)}):
                with self._lock:
                    self.moves[sku] += change
            self._last_move[sku] = time.monotonic()

    def set_stock(self, sku: str, quantity: int) -> None:
        """A stock count in the ERP: the shop's first figure of the SKU comes from its webhook."""
        self._call("count", "/admin/adjust", {"sku": sku, "new_quantity": quantity})

    def touch_group(self, sku: str) -> None:
        """A price change: the shop's first sight of the group comes from its catalog.update."""
        self._call("price", "/admin/price", {"sku": sku, "price": "19.99"})

    def _claim_group(self, group: str) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last_price.get(group, -GROUP_SPACING_S) < GROUP_SPACING_S:
                return False
            self._last_price[group] = now
            return True

    def _call(self, kind: str, path: str, body: dict[str, Any]) -> bool:
        """Whether the ERP did it (and fired its webhook)."""
        try:
            answer = self._session().post(f"{self.erp_url}{path}", json=body, timeout=HTTP_TIMEOUT_S)
        except requests.RequestException:
            outcome = f"{kind}_failed"
            with self._lock:
                self.uncertain += 1
        else:
            # A sale of what the ERP no longer has is refused (400): no event.
            outcome = kind if answer.status_code < 300 else f"{kind}_refused"
        with self._lock:
            self.counts[outcome] += 1
        return outcome == kind


@dataclass
class Storefront:
    """Places orders of what the API shows as available; counts every sample of `available`."""

    api_url: str
    token: str
    amqp_url: str
    skus: list[str]
    placed: dict[str, int] = field(default_factory=dict)  # order id -> publish attempts
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    _publishers: list[ConfirmingPublisher] = field(default_factory=list)

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.headers["Authorization"] = f"Bearer {self.token}"
        session: requests.Session = self._local.session
        return session

    def _publisher(self) -> ConfirmingPublisher:
        if not hasattr(self._local, "publisher"):
            self._local.publisher = ConfirmingPublisher(self.amqp_url)
            with self._lock:
                self._publishers.append(self._local.publisher)
        publisher: ConfirmingPublisher = self._local.publisher
        return publisher

    def sample(self, sku: str) -> int | None:
        """The API's `available` of `sku` (None when the API does not answer); counts the sample."""
        try:
            answer = self._session().get(f"{self.api_url}/api/v1/inventory/{sku}", timeout=HTTP_TIMEOUT_S)
        except requests.RequestException:
            self._count("read_failed")
            return None
        if answer.status_code != 200:
            self._count(f"read_{answer.status_code}")
            return None
        stock = answer.json()
        with self._lock:
            self.counts["samples"] += 1
            if stock["available"] < 0:
                self.counts["negative_available"] += 1
            if stock["erp_quantity"] < stock["reserved"]:
                self.counts["held_beyond_erp_figure"] += 1
        return int(stock["available"])

    def act(self, n: int) -> None:
        rng = random.Random(-n - 1)
        sku = rng.choice(self.skus)
        available = self.sample(sku)
        if not available:
            if available == 0:
                self._count("nothing_to_order")
            return
        order_id = f"SOAK-{n:07d}"
        order: dict[str, Any] = {"order_id": order_id, "order_date": datetime.now(UTC).isoformat(), "customer_ref": "SOAK",
                 "line_items": [{"sku": sku, "quantity": min(available, rng.randint(1, 2)), "unit_price": 19.99}]}
        self._publish(order_id, order)

    def _publish(self, order_id: str, order: dict[str, Any]) -> None:
        # Until the broker confirms it, the order is not placed: the storefront sends it again, same id.
        attempts = 0
        while True:
            attempts += 1
            try:
                publish_order(self._publisher(), order)
                break
            except (BrokerUnavailable, PublishRejected):
                self._count("publish_retried")
                time.sleep(0.5)
        with self._lock:
            self.placed[order_id] = attempts

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def close(self) -> None:
        for publisher in self._publishers:
            publisher.close()
