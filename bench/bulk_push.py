"""A bulk catalog push through the webhook: parallel senders honouring 503 + Retry-After, and waiting until visible."""
from __future__ import annotations

import http.client
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from bench.drain import wait_count
from bench.events import VARIANTS_PER_GROUP
from bench.servers import HOST
from tests.support.factories import catalog_event, encode, signed_headers

SEND_TIMEOUT_S = 120.0
API_BATCH_PAUSE_S = 0.05
_VARIANTS = text("SELECT count(*) FROM variants WHERE sku LIKE :prefix")


@dataclass(frozen=True)
class Push:
    """The encoded events of one push, the SKUs they name (a prefix of their own), and one SKU per event to read back."""

    prefix: str
    bodies: list[bytes]
    skus: int
    sampled: list[str]


def catalog_push(prefix: str, skus: int, per_event: int, image_base: str, images_per_variant: int) -> Push:
    """`skus` new variants in events of `per_event`, each variant with its own images on `image_base`."""
    bodies, sampled = [], []
    for first in range(0, skus, per_event):
        group = f"{prefix}{first // per_event:06d}"
        variants = [_variant(f"{group}-{n}", n, image_base, images_per_variant)
                    for n in range(min(per_event, skus - first))]
        bodies.append(encode(catalog_event(product_group_id=group, group_name=f"Bulk {group}", variants=variants)))
        sampled.append(str(variants[-1]["sku"]))
    return Push(prefix, bodies, skus, sampled)


def _variant(sku: str, number: int, image_base: str, images: int) -> dict[str, object]:
    return {
        "sku": sku, "display_name": f"{sku} display name", "price": 799.0 + number % VARIANTS_PER_GROUP,
        "stock_quantity": 10 + number % 7, "attributes": {"Color": ["Black", "Blue", "Red"][number % 3]},
        "media": [{"url": f"{image_base}&image={sku}-{i}", "is_main": i == 0} for i in range(images)],
    }


@dataclass
class Sent:
    """What the senders saw: 202s, 503s answered and resent after Retry-After, connections lost and resent."""

    accepted: int = 0
    retried_503: int = 0
    resent_after_error: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


def send_all(port: int, bodies: Sequence[bytes], secret: str, senders: int) -> Sent:
    """Post every body from `senders` threads, each on its keep-alive connection, until each is answered 202."""
    work: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    for body in bodies:
        work.put(body)
    sent, failures = Sent(), []
    threads = [threading.Thread(target=_sender, args=(port, work, secret, sent, failures), name=f"sender-{n}")
               for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"a sender failed: {failures[0]}")
    return sent


def _sender(port: int, work: queue.SimpleQueue[bytes], secret: str, sent: Sent, failures: list[str]) -> None:
    connection = http.client.HTTPConnection(HOST, port, timeout=SEND_TIMEOUT_S)
    try:
        while not failures:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            headers = signed_headers(body, secret)
            while True:
                try:
                    connection.request("POST", "/webhooks/erp", body, headers)
                    answer = connection.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException):
                    # As an ERP would: the same event again; the worker applies an event id once.
                    connection.close()
                    sent.add("resent_after_error")
                    continue
                if answer.status == 202:
                    sent.add("accepted")
                    break
                if answer.status == 503:
                    sent.add("retried_503")
                    time.sleep(float(answer.getheader("Retry-After") or 1))
                    continue
                failures.append(f"webhook answered {answer.status}")
                return
    finally:
        connection.close()


def wait_visible(engine: Engine, api_port: int, token: str, push: Push, started: float, timeout_s: float,
                 alive: Callable[[], None]) -> float:
    """Seconds from `started` until the database counts every SKU and the read API shows each sampled one."""
    drain = wait_count(engine, _VARIANTS, {"prefix": f"{push.prefix}%"}, push.skus, started, timeout_s, alive,
                       poll_interval_s=0.2)
    if not drain.complete:
        raise RuntimeError(f"{drain.processed} of {push.skus} SKUs in the database after {timeout_s:.0f} s")
    connection = http.client.HTTPConnection(HOST, api_port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for sku in push.sampled:
            while True:
                connection.request("GET", f"/api/v1/products/{sku}", headers=headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status == 200:
                    break
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"{sku} not in the read API after {timeout_s:.0f} s ({answer.status})")
                alive()
                time.sleep(API_BATCH_PAUSE_S)
    finally:
        connection.close()
    return time.monotonic() - started
