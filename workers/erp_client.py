"""The ERP's REST API as erp-sync calls it (spec 4): orders in, stock deductions, a liveness probe.

What each answer means is decided in workers/erp_http.py, for the sweep's reads as well; here a
409 is one more success (the ERP already has the order), and an ErpMisconfigured raises an ALERT.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
import requests.auth
from requests.adapters import HTTPAdapter

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable
from erp_sync.shared.orders import OrderPlaced, dumps
from erp_sync.shared.settings import Settings
from erp_sync.workers.erp_http import body_excerpt, check_answer, quick_retries, translated
from erp_sync.workers.metrics import ERP_CALLS, erp_call_result

logger = logging.getLogger(__name__)

ORDERS_IMPORT_PATH = "/api/v1/orders/import"
INVENTORY_ADJUST_PATH = "/api/v1/inventory/adjust"
PROBE_PATH = "/api/v1/inventory/snapshot"
ALREADY_IMPORTED = 409


@dataclass(frozen=True)
class PushResult:
    """The ERP took the order (or had it already); `acknowledged_at` is when its answer arrived."""

    status: int
    acknowledged_at: datetime
    already_imported: bool
    body: str
    sent_at: datetime | None = None
    erp_date: datetime | None = None  # the answer's `Date` header: the ERP's clock at its answer


class BearerAuth(requests.auth.AuthBase):
    """The ERP's Bearer token; as a requests auth, it also spares a look for ~/.netrc on every call."""

    def __init__(self, token: str) -> None:
        self._value = f"Bearer {token}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self._value
        return request


class ErpClient:
    """Calls the ERP with a Bearer token, timeouts, verified TLS, and an Idempotency-Key per order."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        token: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        ca_bundle: Path | str | None = None,
        tries: int = 3,
        backoff_base_s: float = 0.2,
        on_retry: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._auth = BearerAuth(token)
        self._timeout = (connect_timeout_s, read_timeout_s)
        # requests verifies against certifi by default; a private CA is given as a bundle file.
        self._verify: bool | str = str(ca_bundle) if ca_bundle else True
        self._proxies: dict[str, str] = {}
        if session.trust_env:
            # requests reads the proxy and CA settings from the environment again on every call:
            # 0.1 ms a call with 35 variables, and more where the platform adds hundreds (as
            # Kubernetes does). They are read here once, for the ERP's address, as requests would
            # read them, and the session is told not to look again.
            self._proxies = requests.utils.get_environ_proxies(self._base_url)
            if self._verify is True:
                self._verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            session.trust_env = False
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

    def probe(self) -> bool:
        """Whether the ERP takes calls: only a success counts (a 401 or 404 is no sign that orders would go through)."""
        url = f"{self._base_url}{PROBE_PATH}"
        try:
            with translated("probe", url):
                response = self._session.get(
                    url, headers=self._headers(None), auth=self._auth, timeout=self._timeout,
                    verify=self._verify, proxies=self._proxies, stream=True,
                )
            with response:  # the snapshot's body is never read, only an error's first bytes
                check_answer("probe", response)
        except ErpMisconfigured as exc:
            # local_only orders wait for an operator, not for the ERP: say so at every probe.
            alert(Cause.ERP_MISCONFIGURED, "ERP probe: %s", exc)
            ERP_CALLS.labels(call="probe", result=erp_call_result(exc)).inc()
            return False
        except (ErpUnavailable, ErpRejected) as exc:
            logger.info("ERP probe: not answering (%s)", exc)
            ERP_CALLS.labels(call="probe", result=erp_call_result(exc)).inc()
            return False
        ERP_CALLS.labels(call="probe", result="ok").inc()
        return True

    def _push(self, path: str, order_id: str, body: dict[str, Any]) -> PushResult:
        what = f"order {order_id}"
        url = f"{self._base_url}{path}"
        payload = dumps(body)

        # Only the transient branch is retried; the Idempotency-Key makes a repeat harmless even
        # when the first request did reach the ERP before timing out.
        @self._retrying
        def send() -> PushResult:
            sent_at = datetime.now(UTC)
            with translated(what, url):
                # A redirect would turn the POST into a GET (301-303): the order must reach the
                # endpoint it is meant for, or wait for an operator to fix ERP_BASE_URL.
                # Prepared here and sent as is: Session.request would merge a cookie jar and
                # environment settings this client never uses, 5-10% of the HTTP call's CPU.
                request = requests.Request("POST", url, data=payload, auth=self._auth, hooks=self._session.hooks,
                                           headers={**self._session.headers, **self._headers(order_id)})
                response = self._session.send(
                    request.prepare(), timeout=self._timeout, verify=self._verify, proxies=self._proxies,
                    allow_redirects=False,
                )
            if response.status_code != ALREADY_IMPORTED:
                check_answer(what, response)
            return PushResult(response.status_code, datetime.now(UTC), response.status_code == ALREADY_IMPORTED,
                              body_excerpt(response), sent_at, _http_date(response.headers.get("Date")))

        try:
            result = send()
        except ErpMisconfigured as exc:
            ERP_CALLS.labels(call="push", result=erp_call_result(exc)).inc()
            # The order may be fine: rejecting it would free its held stock and lose the sale. It
            # waits as pending while someone fixes the cause.
            alert(Cause.ERP_MISCONFIGURED, "%s: %s", what, exc)
            raise
        except Exception as exc:
            ERP_CALLS.labels(call="push", result=erp_call_result(exc)).inc()
            raise
        ERP_CALLS.labels(call="push", result="ok").inc()
        return result

    def _headers(self, order_id: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if order_id is not None:
            headers |= {"Content-Type": "application/json", "Idempotency-Key": order_id}
        return headers


def _http_date(value: str | None) -> datetime | None:
    """An HTTP `Date` header as an aware datetime; None when absent or unreadable (our send time stands in)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def erp_client(settings: Settings) -> ErpClient:
    """The process's ERP client, with a connection for each of its pushes and the probe.

    Stops the worker at start when ERP_BASE_URL or ERP_API_TOKEN is missing.
    """
    base_url, token = settings.erp_credentials()
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=settings.order_push_concurrency + 1)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return ErpClient(
        session, base_url, token,
        connect_timeout_s=settings.erp_connect_timeout_s, read_timeout_s=settings.erp_read_timeout_s,
        ca_bundle=settings.erp_ca_bundle, tries=settings.erp_quick_retries,
        backoff_base_s=settings.erp_quick_retry_base_s,
    )
