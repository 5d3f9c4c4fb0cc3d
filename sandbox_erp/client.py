"""Talking to a running sandbox over HTTP: its admin verbs, and signed webhooks for ERP teams."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from erp_sync.sandbox_erp.events import sign


class BadUrl(ValueError):
    """The URL given is no http(s) URL requests can call."""


class Unreachable(Exception):
    """Nothing answered at the URL: refused, timed out, or the TLS handshake failed."""


def _request(method: str, url: str, **options: Any) -> requests.Response:
    """requests.request, its failures to call at all made BadUrl or Unreachable, each one line."""
    try:
        return requests.request(method, url, **options)
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
            requests.exceptions.URLRequired) as exc:
        raise BadUrl(f"{url!r} is not an http(s) URL") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        # requests wraps urllib3's error, whose own text ends with the reason: "[Errno 111] Connection refused".
        reason = str(getattr(exc.args[0], "reason", exc) if exc.args else exc).rsplit(": ", 1)[-1]
        raise Unreachable(f"{type(exc).__name__}: {reason}") from exc


# verb -> (HTTP method, admin path)
ADMIN_VERBS: dict[str, tuple[str, str]] = {
    "sale": ("POST", "/admin/sale"),
    "receipt": ("POST", "/admin/receipt"),
    "adjust": ("POST", "/admin/adjust"),
    "price": ("POST", "/admin/price"),
    "new-product": ("POST", "/admin/products"),
    "publish-catalog": ("POST", "/admin/catalog"),
    "fault": ("PUT", "/admin/faults"),
    "orders": ("GET", "/admin/orders"),
    "deliveries": ("GET", "/admin/deliveries"),
    "alerts": ("GET", "/admin/alerts"),
    "faults": ("GET", "/admin/faults"),
}


def sandbox_admin(verb: str, base_url: str, token: str, payload: dict[str, Any] | None = None,
                  verify: str | bool = True, timeout: float = 10.0) -> tuple[int, Any]:
    """Call one admin verb of a running sandbox; returns (status, decoded JSON body)."""
    method, path = ADMIN_VERBS[verb]
    response = _request(
        method, base_url.rstrip("/") + path, json=payload if method != "GET" else None,
        headers={"Authorization": f"Bearer {token}"}, verify=verify, timeout=timeout,
    )
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def send_webhook(file: Path | str, url: str, secret: str, ca_bundle: str | None = None,
                 timeout: float = 10.0) -> tuple[int, str]:
    """Sign a payload file exactly as the ERP must (HMAC-SHA256 of the raw bytes) and post it."""
    body = Path(file).read_bytes()
    response = _request(
        "POST", url, data=body, timeout=timeout, verify=ca_bundle or True,
        headers={"Content-Type": "application/json", "X-ERP-Signature": sign(secret, body)},
    )
    return response.status_code, response.text


def load_json_file(path: Path | str) -> Any:
    """A JSON file's content."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
