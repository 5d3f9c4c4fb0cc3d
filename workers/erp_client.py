"""The ERP's REST API as erp-sync calls it (spec 4): orders in, stock deductions, a liveness probe.

What each answer means is decided in workers/erp_http.py, for the sweep's reads as well; here a
409 is one more success (the ERP already has the order), unless it is a web page as a 2xx can be,
and an ErpMisconfigured raises an ALERT.
Calls go through urllib3, on which requests is built, without requests' session layer: with one
call for every order pushed, that layer (preparing, merging settings, hooks, cookies) was a third
of a call's CPU (0.55 against 0.38 ms a push, measured side by side against the sandbox ERP).
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import certifi
import requests.utils
import urllib3

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpSyncError, ErpUnavailable
from erp_sync.shared.orders import OrderPlaced, dumps
from erp_sync.shared.settings import Settings
from erp_sync.workers.erp_clock import http_date
from erp_sync.workers.erp_http import (
    check_not_a_web_page, check_status, excerpt, labelled_html, quick_retries, read_head, shown, stream_excerpt,
    translated,
)
from erp_sync.workers.http_deadlines import WATCHED_POOLS, Cut, Deadlines, cut_at, cut_short_as
from erp_sync.workers.metrics import ERP_CALLS, erp_call_result

logger = logging.getLogger(__name__)

ORDERS_IMPORT_PATH = "/api/v1/orders/import"
INVENTORY_ADJUST_PATH = "/api/v1/inventory/adjust"
PROBE_PATH = "/api/v1/inventory/snapshot"
ALREADY_IMPORTED = 409
USER_AGENT = "erp-sync"

_DEADLINES = Deadlines("erp-call-deadlines")


@dataclass(frozen=True)
class PushResult:
    """The ERP took the order (or had it already); `acknowledged_at` is when its answer arrived."""

    status: int
    acknowledged_at: datetime
    already_imported: bool
    body: str
    sent_at: datetime | None = None
    erp_date: datetime | None = None  # the answer's `Date` header: the ERP's clock at its answer


def erp_pool(base_url: str, ca_bundle: Path | str | None = None, size: int = 1) -> urllib3.PoolManager:
    """Up to `size` kept connections to the ERP, verified TLS, through the environment's proxy for its address.

    The environment is read once, here, as requests would read it on every call: HTTP(S)_PROXY and
    NO_PROXY, and REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE when ERP_CA_BUNDLE names no private CA
    (else certifi's bundle, as requests uses). Its connections hand their sockets to the call's
    deadline (`ErpClient`).
    """
    ca_certs = str(ca_bundle) if ca_bundle else (
        os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where())
    options: dict[str, Any] = {"maxsize": size, "cert_reqs": "CERT_REQUIRED", "ca_certs": ca_certs}
    scheme = base_url.split(":", 1)[0].lower()
    proxy = requests.utils.get_environ_proxies(base_url).get(scheme)
    pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
    pool.pool_classes_by_scheme = WATCHED_POOLS
    return pool


class ErpClient:
    """Calls the ERP with a Bearer token, timeouts, verified TLS, and an Idempotency-Key per order.

    Each try of a call waits for its answer no longer than the connect and the read timeout together:
    the read timeout alone bounds each read, and an answer trickled a byte at a time would hold a
    push thread (or the probe) for hours. A status line in by then decides, as ever; without one,
    the ERP did not answer.
    """

    def __init__(
        self,
        pool: urllib3.PoolManager,
        base_url: str,
        token: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        snapshot_read_timeout_s: float | None = None,
        tries: int = 3,
        backoff_base_s: float = 0.2,
        on_retry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._pool = pool
        self._base_url = base_url.rstrip("/")
        self._authorization = f"Bearer {token}"
        self._timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)
        self._try_s = connect_timeout_s + read_timeout_s
        # The probe asks for the snapshot, which an ERP may take as long to begin as the sweep allows it.
        probe_read_s = read_timeout_s if snapshot_read_timeout_s is None else snapshot_read_timeout_s
        self._probe_timeout = urllib3.Timeout(connect=connect_timeout_s, read=probe_read_s)
        self._probe_try_s = connect_timeout_s + probe_read_s
        self._probe_cut: Cut | None = None
        self._probing_stopped = False
        self._retrying = quick_retries(tries, backoff_base_s, on_retry)

    def import_order(self, order: OrderPlaced) -> PushResult:
        """Option A: POST the full order."""
        return self._push(ORDERS_IMPORT_PATH, order.order_id, order.as_option_a())

    def adjust_inventory(self, order: OrderPlaced, warehouse_id: str) -> PushResult:
        """Option B: POST a negative quantity change per line, referenced by the order id."""
        body = {
            "reference_id": order.order_id,
            "adjustments": [
                {"sku": line.sku, "quantity_change": -line.quantity, "warehouse_id": order.warehouse_id or warehouse_id}
                for line in order.line_items
            ],
        }
        return self._push(INVENTORY_ADJUST_PATH, order.order_id, body)

    def probe(self) -> bool | None:
        """Whether the ERP takes calls: only a success counts (a 401 or 404 is no sign that orders would go through).

        None once `stop_probing` was called: the ERP was not asked, or its answer was cut short.
        """
        url = f"{self._base_url}{PROBE_PATH}"
        if self._probing_stopped:
            return None
        cut: Cut | None = None
        try:
            with self._try(self._probe_try_s) as cut:
                self._probe_cut = cut
                if self._probing_stopped:  # stopped as this probe began
                    cut.shut()
                with self._status_in_time("probe", url, cut, self._probe_try_s), translated("probe", url):
                    # The snapshot's body is never read, only an error's first bytes.
                    response = self._pool.request("GET", url, headers=self._headers(None), timeout=self._probe_timeout,
                                                  retries=False, redirect=False, preload_content=False)
                try:
                    check_status("probe", url, response.status, response.headers, lambda: stream_excerpt(response))
                    check_not_a_web_page("probe", url, response.status, response.headers,
                                         stream_excerpt(response) if labelled_html(response.headers) else "")
                finally:
                    response.close()
        except ErpMisconfigured as exc:
            # local_only orders wait for an operator, not for the ERP: say so at every probe.
            alert(Cause.ERP_MISCONFIGURED, "ERP probe: %s", exc)
            ERP_CALLS.labels(call="probe", result=erp_call_result(exc)).inc()
            return False
        except (ErpUnavailable, ErpRejected) as exc:
            if self._probing_stopped:
                # Cut short by `stop_probing`, or failing as the worker stops (a connect outlasts
                # the cut, which has no socket to shut yet): nothing acts on the verdict now.
                return None
            logger.info("ERP probe: not answering (%s)", exc)
            ERP_CALLS.labels(call="probe", result=erp_call_result(exc)).inc()
            return False
        finally:
            self._probe_cut = None
        ERP_CALLS.labels(call="probe", result="ok").inc()
        return True

    def stop_probing(self) -> None:
        """End a probe under way (one still connecting, within ERP_CONNECT_TIMEOUT_S), and answer
        later ones None without asking: the worker is stopping, and a probe may take
        ERP_CONNECT_TIMEOUT_S + RECONCILE_READ_TIMEOUT_S."""
        self._probing_stopped = True
        if (cut := self._probe_cut) is not None:
            cut.shut()

    def _push(self, path: str, order_id: str, body: dict[str, Any]) -> PushResult:
        what = f"order {order_id}"
        url = f"{self._base_url}{path}"
        payload = dumps(body)

        # Only the transient branch is retried; the Idempotency-Key makes a repeat harmless even
        # when the first request did reach the ERP before timing out.
        @self._retrying
        def send() -> PushResult:
            sent_at = datetime.now(UTC)
            with self._try(self._try_s) as cut:
                with self._status_in_time(what, url, cut, self._try_s), translated(what, url):
                    # A redirect would turn the POST into a GET (301-303): the order must reach the
                    # endpoint it is meant for, or wait for an operator to fix ERP_BASE_URL.
                    response = self._pool.request("POST", url, body=payload, headers=self._headers(order_id),
                                                  timeout=self._timeout, retries=False, redirect=False,
                                                  preload_content=False)
                body = self._excerpt_in_time(response, what, url, cut)
            if response.status != ALREADY_IMPORTED:
                check_status(what, url, response.status, response.headers, lambda: body)
            check_not_a_web_page(what, url, response.status, response.headers, body)
            return PushResult(response.status, datetime.now(UTC), response.status == ALREADY_IMPORTED,
                              body, sent_at, http_date(response.headers.get("Date")))

        try:
            result = send()
        except ErpMisconfigured as exc:
            ERP_CALLS.labels(call="push", result=erp_call_result(exc)).inc()
            # The order may be fine: rejecting it would free its held stock and lose the sale. It
            # waits as pending while someone fixes the cause.
            alert(Cause.ERP_MISCONFIGURED, "%s", exc)  # it begins with `what`, the order's id
            raise
        except Exception as exc:
            ERP_CALLS.labels(call="push", result=erp_call_result(exc)).inc()
            raise
        ERP_CALLS.labels(call="push", result="ok").inc()
        return result

    @staticmethod
    def _try(seconds: float) -> AbstractContextManager[Cut]:
        """One try of a call: its sockets shut once the connect and read timeouts (`seconds`) have both run out."""
        return cut_at(time.monotonic() + seconds, _DEADLINES)

    @staticmethod
    def _status_in_time(what: str, url: str, cut: Cut, seconds: float) -> AbstractContextManager[None]:
        """Waiting for an answer's status line: a wait cut short by the try's deadline is unavailable,
        whatever it raised."""
        return cut_short_as(cut, ErpSyncError, lambda: ErpUnavailable(
            f"{what}: {shown(url)} did not answer within {seconds:g} s", url=shown(url)))

    @staticmethod
    def _excerpt_in_time(response: Any, what: str, url: str, cut: Cut) -> str:
        """The answer's first bytes, read until the try's deadline at most: by then its status decides."""
        head = bytearray()
        try:
            with translated(what, url):
                read_head(response, head)
        except ErpUnavailable:
            if not cut.happened.is_set():
                raise
        return excerpt(bytes(head))

    def _headers(self, order_id: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "Authorization": self._authorization, "User-Agent": USER_AGENT}
        if order_id is not None:
            headers |= {"Content-Type": "application/json", "Idempotency-Key": order_id}
        return headers


def erp_client(settings: Settings) -> ErpClient:
    """The process's ERP client, with a connection for each of its pushes and the probe.

    Stops the worker at start when ERP_BASE_URL or ERP_API_TOKEN is missing.
    """
    base_url, token = settings.erp_credentials("the orders worker")
    return ErpClient(
        erp_pool(base_url, settings.erp_ca_bundle, settings.order_push_concurrency + 1), base_url, token,
        connect_timeout_s=settings.erp_connect_timeout_s, read_timeout_s=settings.erp_read_timeout_s,
        snapshot_read_timeout_s=settings.reconcile_read_timeout_s, tries=settings.erp_quick_retries,
        backoff_base_s=settings.erp_quick_retry_base_s,
    )
