"""The ERP's REST API as erp-sync calls it (spec 4): orders in, stock deductions, a liveness probe.

Every `requests` failure is translated in `_translated` alone:

    timeout, connection error, 5xx, 429  ->  ErpUnavailable (transient; retried a few quick times here)
    409 (the ERP already has this order) ->  PushResult(already_imported=True), a success
    any other 4xx                        ->  ErpRejected (permanent)
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backoff
import requests
import requests.auth

from erp_sync.shared.errors import ErpRejected, ErpUnavailable
from erp_sync.shared.orders import OrderPlaced, dumps

logger = logging.getLogger(__name__)

ORDERS_IMPORT_PATH = "/api/v1/orders/import"
INVENTORY_ADJUST_PATH = "/api/v1/inventory/adjust"
PROBE_PATH = "/api/v1/inventory/snapshot"
MAX_BODY_CHARS = 2000


@dataclass(frozen=True)
class PushResult:
    """The ERP took the order (or had it already); `acknowledged_at` is when its answer arrived."""

    status: int
    acknowledged_at: datetime
    already_imported: bool
    body: str


def _body_of(response: requests.Response) -> str:
    try:
        return response.text[:MAX_BODY_CHARS]
    except (requests.RequestException, UnicodeDecodeError):
        return ""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map the `requests` exceptions of one call onto our tree; the cause stays chained."""
    try:
        yield
    except requests.Timeout as exc:
        raise ErpUnavailable(f"{what}: the ERP did not answer in time ({exc})") from exc
    except requests.ConnectionError as exc:
        # Includes SSLError (a certificate we do not trust is an outage of the link, not of the order)
        # and ProxyError; ConnectTimeout/ReadTimeout were taken above.
        raise ErpUnavailable(f"{what}: cannot reach the ERP ({exc})") from exc
    except requests.RequestException as exc:
        # InvalidURL, TooManyRedirects, ChunkedEncodingError, ContentDecodingError...: the request
        # may or may not have reached the ERP, and its Idempotency-Key makes a retry safe.
        raise ErpUnavailable(f"{what}: request failed ({type(exc).__name__}: {exc})") from exc


# 4xx answers that say nothing about the order: authentication, a wrong URL, a request timeout.
NOT_ABOUT_THE_ORDER = frozenset({401, 403, 404, 407, 408})


def _check(what: str, response: requests.Response) -> PushResult:
    status = response.status_code
    body = _body_of(response)
    if status >= 500 or status == 429:
        raise ErpUnavailable(f"{what}: the ERP answered {status}", status=status, body=body)
    if status == 409:
        return PushResult(status, datetime.now(UTC), True, body)
    if status in NOT_ABOUT_THE_ORDER:
        # Our token, our URL or the ERP's timeout: the order itself may be fine. Rejecting it would
        # free its held stock and lose the sale; keep retrying while someone fixes the cause.
        logger.error("ALERT %s: the ERP answered %s; check ERP_API_TOKEN and ERP_BASE_URL", what, status)
        raise ErpUnavailable(f"{what}: the ERP answered {status}", status=status, body=body)
    if status >= 400:
        raise ErpRejected(f"{what}: the ERP refused it with {status}: {body}", status=status, body=body)
    if status >= 300:
        raise ErpUnavailable(f"{what}: unexpected redirect {status}", status=status, body=body)
    return PushResult(status, datetime.now(UTC), False, body)


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
        self._tries = tries
        self._backoff_base_s = backoff_base_s
        self._on_retry = on_retry

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
        """Whether the ERP answers at all: any answer below 500 counts, the body is never read."""
        try:
            with _translated("probe"):
                response = self._session.get(
                    f"{self._base_url}{PROBE_PATH}", headers=self._headers(None), auth=self._auth, timeout=self._timeout,
                    verify=self._verify, proxies=self._proxies, stream=True,
                )
                response.close()
        except ErpUnavailable as exc:
            logger.info("ERP probe: not answering (%s)", exc)
            return False
        # A 401 or 404 is no sign that orders would go through.
        return response.status_code < 400

    def _push(self, path: str, order_id: str, body: dict[str, Any]) -> PushResult:
        what = f"order {order_id}"
        payload = dumps(body)

        # Only the transient branch is retried; the Idempotency-Key makes a repeat harmless even
        # when the first request did reach the ERP before timing out.
        @backoff.on_exception(backoff.expo, ErpUnavailable, max_tries=self._tries, factor=self._backoff_base_s,
                              jitter=backoff.full_jitter, on_backoff=self._log_retry, raise_on_giveup=True)
        def send() -> PushResult:
            with _translated(what):
                response = self._session.post(
                    f"{self._base_url}{path}", data=payload, headers=self._headers(order_id), auth=self._auth,
                    timeout=self._timeout, verify=self._verify, proxies=self._proxies,
                )
            return _check(what, response)

        return send()

    def _headers(self, order_id: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if order_id is not None:
            headers |= {"Content-Type": "application/json", "Idempotency-Key": order_id}
        return headers

    def _log_retry(self, details: Any) -> None:
        logger.warning("ERP call retry %d in %.2f s: %s", details["tries"], details["wait"], details.get("exception"))
        if self._on_retry is not None:
            self._on_retry(dict(details))
