"""The ERP's HTTP edge: what each answer and each transport failure of a call to the ERP means.

The orders client (workers/erp_client.py) and the snapshot reader (workers/snapshot_reader.py)
both go through here, so an answer means the same to both:

    answer or failure                              error             why
    2xx                                            (none)            done
    2xx or 409 with a web page (HTML markup)       ErpMisconfigured  a proxy's, firewall's or maintenance
                                                                     page: the ERP's API never saw the call
    408, 425, 429, 5xx; unreachable, timed out,    ErpUnavailable    the ERP is busy or down: it goes away
      reset, a stream cut short, a TLS handshake                     by itself; a few quick tries here, each
                                                                     after the wait it asks for (Retry-After),
                                                                     none when that is over 5 s
    401, 403, 407                                  ErpMisconfigured  our credentials: an operator must fix
    404, 405, 410, 421; 3xx (redirects not taken)  ErpMisconfigured  our base URL or endpoint, likewise
    a certificate we do not trust; a malformed     ErpMisconfigured  ERP_CA_BUNDLE, ERP_BASE_URL, the token
      URL or header; a redirect loop
    any other 4xx (400, 409, 413, 422, ...)        ErpRejected       the request itself is refused, for good

ErpMisconfigured is an ErpUnavailable (the request is not at fault and must wait, never be
refused) that `quick_retries` does not retry: only an operator can make it succeed. A 409 to an
order means the ERP already has it, a success: the orders client checks for it before calling
`check_answer`. Every error keeps the URL (without its query: a presigned URL's signature stays
out of logs), the status and an excerpt of the body.
"""
from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import backoff
import requests
import urllib3

from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable
from erp_sync.workers.erp_clock import http_date

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
ErpErrorClass = type[ErpUnavailable] | type[ErpRejected]

MAX_BODY_BYTES = 2000
COME_BACK_LATER = frozenset({408, 425, 429})
# The longest wait an ERP may ask for (Retry-After) that a quick try honours by waiting it; asked for
# longer, the call gets no more quick tries, and the caller's retry (an order's next interval) waits.
QUICK_RETRY_AFTER_MAX_S = 5.0
# Answers that say nothing about the request, only that our side of the link is wrong.
NOT_ABOUT_THE_REQUEST = {
    401: "the ERP refused our token: check ERP_API_TOKEN",
    403: "the ERP does not allow our token this call: check ERP_API_TOKEN and its rights at the ERP",
    404: "no such endpoint: check ERP_BASE_URL",
    405: "the endpoint does not take this method: check ERP_BASE_URL",
    407: "the proxy wants credentials: check HTTPS_PROXY",
    410: "the endpoint is gone: check ERP_BASE_URL",
    421: "the server is not the ERP for that host: check ERP_BASE_URL",
}
REDIRECT_HINT = "a redirect to {}: set ERP_BASE_URL to where it points"
# Firewalls, login proxies and maintenance pages answer 200 with a page of their own: taken as a
# success, an order would count as synced and end its holds while the ERP never deducted it.
WEB_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml"})
WEB_PAGE_STARTS = ("<!doctype html", "<html")
WEB_PAGE_HINT = ("a web page, not the ERP's API (a proxy's, firewall's, login or maintenance page?): "
                 "check ERP_BASE_URL and what stands in front of the ERP")
# A file at a URL the ERP gave (a `{"url"}` snapshot): no setting of ours is in that URL.
FILE_NOT_THERE = "no such file at the URL the ERP gave (expired, or not written yet): look at the ERP's export"
FILE_REFUSED = "the URL the ERP gave was refused (expired, or not signed for us): look at the ERP's export"
FILE_HINTS = {401: FILE_REFUSED, 403: FILE_REFUSED, 404: FILE_NOT_THERE, 410: FILE_NOT_THERE}
# A file on the ERP's own host gets our token: a refusal there is about it, a 404 about the file.
OWN_FILE_HINTS = NOT_ABOUT_THE_REQUEST | {404: FILE_NOT_THERE, 410: FILE_NOT_THERE}

# What a transport failure means, each said once.
Meaning = tuple[type[ErpUnavailable], str]
BAD_URL: Meaning = (ErpMisconfigured, "not a usable URL (check ERP_BASE_URL):")
BAD_HEADER: Meaning = (ErpMisconfigured, "a header we send is invalid (check ERP_API_TOKEN) for")
ENDLESS_REDIRECTS: Meaning = (ErpMisconfigured, "redirects without end (check ERP_BASE_URL):")
NO_TLS: Meaning = (ErpUnavailable, "no TLS link to")  # refined in `transport_error`: an untrusted certificate
NO_PROXY: Meaning = (ErpUnavailable, "cannot reach the ERP through the proxy at")
UNREACHABLE: Meaning = (ErpUnavailable, "cannot reach the ERP at")
UNREACHABLE_IN_TIME: Meaning = (ErpUnavailable, "cannot reach the ERP in time at")
NO_ANSWER_IN_TIME: Meaning = (ErpUnavailable, "the ERP did not answer in time at")
BROKE_OFF: Meaning = (ErpUnavailable, "the stream broke off from")
# InvalidJSONError, RetryError, StreamConsumedError...: the request may or may not have reached
# the ERP; an order's Idempotency-Key makes trying again safe.
FAILED: Meaning = (ErpUnavailable, "the request failed at")

# Transport failures, from requests (the sweep's snapshot), from urllib3 as it raises them to the
# orders client (retries=False) and while a streamed body is read, and from the socket and
# http.client under both (a ValueError: a header with a line break, such as a pasted token).
# The most specific class of an exception's MRO found here decides, as in httpx's
# map_httpcore_exceptions.
TRANSPORT_ERRORS: dict[type[Exception], Meaning] = {
    requests.exceptions.InvalidURL: BAD_URL, requests.exceptions.MissingSchema: BAD_URL,
    requests.exceptions.InvalidSchema: BAD_URL, requests.exceptions.URLRequired: BAD_URL,
    urllib3.exceptions.LocationValueError: BAD_URL,
    requests.exceptions.InvalidHeader: BAD_HEADER, ValueError: BAD_HEADER,
    requests.exceptions.TooManyRedirects: ENDLESS_REDIRECTS,
    requests.exceptions.SSLError: NO_TLS, urllib3.exceptions.SSLError: NO_TLS,
    requests.exceptions.ProxyError: NO_PROXY, urllib3.exceptions.ProxyError: NO_PROXY,
    requests.exceptions.ConnectTimeout: UNREACHABLE_IN_TIME, urllib3.exceptions.ConnectTimeoutError: UNREACHABLE_IN_TIME,
    requests.ConnectionError: UNREACHABLE, urllib3.exceptions.NewConnectionError: UNREACHABLE,
    requests.Timeout: NO_ANSWER_IN_TIME, urllib3.exceptions.TimeoutError: NO_ANSWER_IN_TIME,
    TimeoutError: NO_ANSWER_IN_TIME,
    requests.exceptions.ChunkedEncodingError: BROKE_OFF, requests.exceptions.ContentDecodingError: BROKE_OFF,
    urllib3.exceptions.HTTPError: BROKE_OFF, OSError: BROKE_OFF,
    requests.RequestException: FAILED,
}
CAUGHT = tuple(TRANSPORT_ERRORS)
TRUST_HINT = "a certificate we do not trust (check ERP_CA_BUNDLE) at"


def error_class(status: int) -> ErpErrorClass | None:
    """The error an answer with this status raises; None for a success."""
    if 200 <= status < 300:
        return None
    if status >= 500 or status in COME_BACK_LATER:
        return ErpUnavailable
    if 300 <= status < 400 or status in NOT_ABOUT_THE_REQUEST:
        return ErpMisconfigured
    if 400 <= status < 500:
        return ErpRejected
    return ErpUnavailable  # a 1xx as the final answer: the link is confused, not the request


def check_answer(what: str, response: requests.Response, hints: Mapping[int, str] = NOT_ABOUT_THE_REQUEST) -> None:
    """Raise the error a requests response's status maps to; return for a success."""
    check_status(what, response.url, response.status_code, response.headers, lambda: body_excerpt(response), hints)


def check_status(what: str, url: str, status: int, headers: Mapping[str, str], read_excerpt: Callable[[], str],
                 hints: Mapping[int, str] = NOT_ABOUT_THE_REQUEST) -> None:
    """Raise the error an answer's status maps to, with the first bytes of its body; return for a success.

    `hints`: what to look at for a status that is not about the request (FILE_HINTS for a file at a
    URL the ERP gave); the ERP's own statuses and settings otherwise.
    """
    kind = error_class(status)
    if kind is None:
        return
    url, body = shown(url), read_excerpt()
    if kind is ErpRejected:
        raise ErpRejected(f"{what}: {url} refused it with {status}: {body}", status=status, body=body, url=url)
    if kind is ErpMisconfigured:
        hint = hints.get(status) or NOT_ABOUT_THE_REQUEST.get(status) \
            or REDIRECT_HINT.format(headers.get("Location", "nowhere"))
        raise ErpMisconfigured(f"{what}: {url} answered {status}, {hint}", status=status, body=body, url=url)
    wait_s = retry_after_s(headers.get("Retry-After"))
    asked = "" if wait_s is None else f", asking us to wait {wait_s:g} s"
    raise ErpUnavailable(f"{what}: {url} answered {status}{asked}", status=status, body=body, url=url,
                         retry_after_s=wait_s)


def retry_after_s(value: str | None) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value.strip()):
        return float(value.strip())
    when = http_date(value)
    return None if when is None else max((when - datetime.now(UTC)).total_seconds(), 0.0)


def check_not_a_web_page(what: str, url: str, status: int, headers: Mapping[str, str], body: str | None) -> None:
    """Raise ErpMisconfigured for an answer that would count as the ERP's yes but is a web page.

    `body`: the first bytes of the answer, which decide: markup, or HTML by its Content-Type and
    beginning with a tag (many legacy stacks label their yes `text/html`: empty, a word or JSON is no
    page). None for an answer that is never HTML when right (a snapshot): its Content-Type decides.
    """
    start = "" if body is None else body.lstrip()[:len(WEB_PAGE_STARTS[0])].lower()
    if start.startswith(WEB_PAGE_STARTS) or labelled_html(headers) and (body is None or start.startswith("<")):
        raise ErpMisconfigured(f"{what}: {shown(url)} answered {status} with {WEB_PAGE_HINT}",
                               status=status, body=body or "", url=shown(url))


def media_type(headers: Mapping[str, str]) -> str:
    """An answer's Content-Type without its parameters, in lower case; "" without one."""
    return (headers.get("Content-Type") or "").partition(";")[0].strip().lower()


def labelled_html(headers: Mapping[str, str]) -> bool:
    """Whether an answer's Content-Type calls it a web page."""
    return media_type(headers) in WEB_PAGE_TYPES


@contextmanager
def translated(what: str, url: str) -> Iterator[None]:
    """Map the transport failures of a call to `url`, or of reading its body, onto our tree; the cause stays chained."""
    try:
        yield
    except CAUGHT as exc:
        raise transport_error(what, url, exc) from exc


def transport_error(what: str, url: str, exc: Exception) -> ErpUnavailable:
    """Our error for one transport failure (any exception in TRANSPORT_ERRORS)."""
    kind, says = next(TRANSPORT_ERRORS[cls] for cls in type(exc).__mro__ if cls in TRANSPORT_ERRORS)
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)) and _certificate_refused(exc):
        kind, says = ErpMisconfigured, TRUST_HINT
    return kind(f"{what}: {says} {shown(url)} ({type(exc).__name__}: {exc})", url=shown(url))


def quick_retries(tries: int, base_s: float, on_retry: Callable[[dict[str, Any]], None] | None = None,
                  ) -> Callable[[F], F]:
    """A decorator: up to `tries` tries, growing pauses, on ErpUnavailable alone, never on ErpMisconfigured.

    A pause is the wait the ERP asked for (`Retry-After`) and a random growing part. Past
    QUICK_RETRY_AFTER_MAX_S there is no quick try: its asking is the caller's retry's to honour.
    """

    def log_retry(details: Any) -> None:
        # Expected when the ERP has a bad moment: news only if the order ends up waiting (logged there).
        logger.info("ERP call retry %d in %.2f s: %s", details["tries"], details["wait"], details.get("exception"))
        if on_retry is not None:
            on_retry(dict(details))

    decorator: Callable[[F], F] = backoff.on_exception(
        _pauses, ErpUnavailable, max_tries=tries, base_s=base_s, jitter=None,
        giveup=_not_to_retry_quickly, on_backoff=log_retry, raise_on_giveup=True,
        # backoff's own "Giving up" is an ERROR; the caller logs what the failure means (an order waits).
        logger=None,
    )
    return decorator


def _pauses(base_s: float) -> Generator[float, Exception | None, None]:
    """backoff's wait generator: the failure's Retry-After, then a growing pause with full jitter.

    backoff sends each failure in; the jitter is drawn here and added to the wait the ERP asked for,
    never taken from it: the pushes one rate limit refused together do not all try again in step.
    """
    failure = yield 0.0  # backoff primes the generator with a first send
    for ceiling in backoff.expo(factor=base_s):
        if ceiling is None:  # expo's own priming step
            continue
        asked = max(getattr(failure, "retry_after_s", None) or 0.0, 0.0)
        failure = yield asked + backoff.full_jitter(ceiling)


def longest_quick_pauses_s(tries: int, base_s: float) -> float:
    """The most a call's quick tries may sleep in all: each pause the longest Retry-After honoured, and its jitter."""
    return sum((QUICK_RETRY_AFTER_MAX_S + base_s * 2.0**n for n in range(tries - 1)), 0.0)


def _not_to_retry_quickly(exc: Exception) -> bool:
    if isinstance(exc, ErpMisconfigured):
        return True
    wait_s = getattr(exc, "retry_after_s", None)
    return wait_s is not None and wait_s > QUICK_RETRY_AFTER_MAX_S


def body_excerpt(response: requests.Response) -> str:
    """The first MAX_BODY_BYTES of the body (of a streamed one too), or "" when it cannot be read."""
    try:
        chunk = next(response.iter_content(MAX_BODY_BYTES), b"")
    except CAUGHT:
        return ""
    return excerpt(chunk) if isinstance(chunk, bytes) else str(chunk)


def excerpt(body: bytes) -> str:
    """The first MAX_BODY_BYTES of a body as text, without NUL (which PostgreSQL refuses in `last_error`)
    and without the spaces and line ends around it (a JSON answer's last newline ended alert lines as \\n)."""
    return body[:MAX_BODY_BYTES].decode("utf-8", "replace").replace("\x00", "").strip()


def read_head(response: Any, into: bytearray) -> None:
    """Read the first MAX_BODY_BYTES (and one more) of a streamed urllib3 answer `into` a buffer, and no
    more: an ERP's answer of a hundred megabytes would otherwise be held in memory, once for each push
    under way. What came stays in `into` when reading fails. Its connection goes back to the pool
    when that was the whole body, and is closed when it was not."""
    try:
        while len(into) <= MAX_BODY_BYTES and (chunk := response.read1(MAX_BODY_BYTES + 1 - len(into))):
            into += chunk
    except BaseException:
        response.close()
        raise
    if len(into) > MAX_BODY_BYTES:
        response.close()
    else:
        response.release_conn()


def stream_excerpt(raw: Any) -> str:
    """The first MAX_BODY_BYTES of a streamed urllib3 body, or "" when it cannot be read."""
    try:
        return excerpt(raw.read(MAX_BODY_BYTES))
    except CAUGHT:
        return ""


def shown(url: str) -> str:
    """The URL as errors and logs show it: no credentials, no query (a presigned URL's signature)."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment="").geturl()


def _certificate_refused(exc: BaseException) -> bool:
    """Whether the ERP's certificate failed verification, somewhere in the wrapped causes of a TLS failure."""
    todo, seen = [exc], set()
    while todo:
        error = todo.pop()
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        if id(error) in seen:
            continue
        seen.add(id(error))
        wrapped = [*error.args, getattr(error, "reason", None), error.__cause__, error.__context__]
        todo.extend(item for item in wrapped if isinstance(item, BaseException))
    return False
