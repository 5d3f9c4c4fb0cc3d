"""Download a product image from a URL the ERP sent, without letting that URL reach inside.

Before each hop (the first request and every redirect) the URL must be http(s) and every address
its host resolves to must be public, unless private networks are allowed. The request then goes to
a checked address itself, with the name in `Host` and in TLS, so a DNS answer that changes between
the check and the connection (DNS rebinding) cannot point it elsewhere.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import socket
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from erp_sync.shared.errors import MediaRejected, MediaUnavailable
from erp_sync.workers.http_deadlines import Deadlines, WatchedAdapter, cut_at, cut_short_as

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
MAX_ADDRESSES_TRIED = 3
CHUNK_BYTES = 64 * 1024
SNIFF_BYTES = 12
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}


@dataclass(frozen=True)
class FetchedImage:
    """What the commerce side confirms about a downloaded image."""

    content_type: str
    byte_size: int
    sha256: str


def sniff_image_type(head: bytes) -> str | None:
    """The type the first bytes announce, if they are a PNG, JPEG, GIF or WebP image."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def address_problem(
    address: IPAddress, *, allow_private_networks: bool, allowed_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why `address` must not be contacted, or None when it may be."""
    if isinstance(address, ipaddress.IPv6Address):
        address = _embedded_ipv4(address) or address
    if address.is_unspecified:
        return "unspecified address"
    if address.is_multicast:
        return "multicast address"
    if allow_private_networks or any(address in network for network in allowed_networks):
        return None
    for kind, found in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                        ("private", address.is_private), ("reserved", address.is_reserved)):
        if found:
            return f"{kind} address"
    return None if address.is_global else "non-public address"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # These IPv6 forms carry an IPv4 address and reach it, so that one is judged.
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


def translate_requests_error(error: requests.RequestException, url: str) -> MediaUnavailable | MediaRejected:
    """Our error for a `requests` failure: the network's fault is transient, the URL's permanent."""
    if isinstance(error, requests.exceptions.SSLError):
        # Nearly always a certificate that does not verify, which retries will not change.
        return MediaRejected(f"TLS failed: {error}", url=url)
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                          requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader,
                          requests.exceptions.ContentDecodingError)):
        return MediaRejected(f"invalid request or response: {error}", url=url)
    if isinstance(error, requests.Timeout):
        return MediaUnavailable(f"timed out: {error}", url=url)
    if isinstance(error, requests.ConnectionError):
        return MediaUnavailable(f"connection failed: {error}", url=url)
    # Anything else (a truncated body, ...) is bounded by the worker's attempt limit anyway.
    return MediaUnavailable(f"{type(error).__name__}: {error}", url=url)


@contextmanager
def _translated_errors(url: str) -> Iterator[None]:
    try:
        yield
    except requests.RequestException as exc:
        raise translate_requests_error(exc, url) from exc
    except (ValueError, UnicodeError) as exc:
        # An answer the libraries cannot read (a Location that is no URL, say): that host's fault,
        # for this image alone; raised, it would park the whole batch with the images it got right.
        raise MediaRejected(f"an answer that cannot be read: {exc}", url=url) from exc


class PinnedAddressAdapter(WatchedAdapter):
    """Connects to the address in the URL while TLS verifies the certificate of the name in `Host`;
    its connections hand their sockets to the download's deadline (http_deadlines.watch)."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        host = request.headers.get("Host")
        if host_params["scheme"] == "https" and isinstance(host, str):
            name = host[1:host.index("]")] if host.startswith("[") else host.split(":")[0]
            pool_kwargs = {**pool_kwargs, "server_hostname": name, "assert_hostname": name}
        return host_params, pool_kwargs


@dataclass(frozen=True)
class _Hop:
    """One checked URL: the addresses to connect to and the name to present to them."""

    scheme: str
    host: str
    port: int
    path: str
    query: str
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def url_for(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return urlunsplit((self.scheme, f"{host}:{self.port}", self.path or "/", self.query, ""))


def media_session() -> requests.Session:
    """A session for image downloads that reads the environment's proxy settings once, not per request.

    requests looks up the proxy variables, `no_proxy` and ~/.netrc again for every request, a
    quarter of a download's CPU. Without a proxy configured it is told not to: the CA bundle
    variables are read here instead, and no netrc credentials are sent (as none from the URL are).
    With a proxy configured every request still consults the environment, as before.
    """
    session = requests.Session()
    if not urllib.request.getproxies():
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


class MediaFetcher:
    """Downloads images over `session`, on which it mounts its address-pinning adapter.

    `connect_timeout_s` and `read_timeout_s` bound each connection and each read; `total_timeout_s`
    bounds a whole download, so a server trickling bytes cannot hold a worker.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        total_timeout_s: float,
        max_bytes: int,
        allow_private_networks: bool,
        allowed_networks: Sequence[IPNetwork] = (),
        max_redirects: int = 3,
        connections_per_host: int = 10,
    ) -> None:
        # As many kept connections per host as downloads run at once: a smaller pool would close the rest.
        adapter = PinnedAddressAdapter(pool_maxsize=connections_per_host)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session
        self._timeout = (connect_timeout_s, read_timeout_s)
        self._total_timeout_s = total_timeout_s
        self._max_bytes = max_bytes
        self._allow_private_networks = allow_private_networks
        self._allowed_networks = tuple(allowed_networks)
        self._max_redirects = max_redirects
        self._deadlines = Deadlines("media-deadlines")

    def fetch(self, url: str) -> FetchedImage:
        """Download `url`, following up to `max_redirects` redirects, each checked like the first."""
        deadline = time.monotonic() + self._total_timeout_s
        for _ in range(self._max_redirects + 1):
            hop = self._check(url)
            with self._within(deadline, url), _translated_errors(url), self._open(hop) as response:
                status = response.status_code
                location = response.headers.get("Location")
                if status in REDIRECT_STATUSES and location:
                    url = urljoin(url, location)
                    continue
                if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
                    raise MediaUnavailable(f"HTTP {status}", url=url, status=status)
                if status != 200:
                    raise MediaRejected(f"HTTP {status}", url=url, status=status)
                return self._read(url, response)
        raise MediaRejected(f"more than {self._max_redirects} redirects", url=url)

    @contextmanager
    def _within(self, deadline: float, url: str) -> Iterator[None]:
        """One hop of a download, its sockets shut at `deadline`; a hop cut short is unavailable, whatever it raised."""
        def too_slow() -> MediaUnavailable:
            return MediaUnavailable(f"took longer than {self._total_timeout_s} s", url=url)

        with cut_at(deadline, self._deadlines) as cut:
            with cut_short_as(cut, (MediaRejected, MediaUnavailable, requests.RequestException), too_slow):
                yield
            if cut.happened.is_set():  # a body without a length just ends when its socket is shut
                raise too_slow()

    def _check(self, url: str) -> _Hop:
        """Refuse `url` unless it is http(s) and its host resolves only to addresses we may contact."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise MediaRejected(f"only http and https URLs are fetched, not {scheme or 'a relative URL'}", url=url)
        try:
            port = DEFAULT_PORTS[scheme] if parts.port is None else parts.port
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except (ValueError, UnicodeError) as exc:
            raise MediaRejected(f"invalid URL: {exc}", url=url) from exc
        if port == 0:
            raise MediaRejected("the URL names port 0", url=url)
        if not host:
            raise MediaRejected("the URL names no host", url=url)
        if parts.username is not None or parts.password is not None:
            raise MediaRejected("credentials in an image URL are not sent", url=url)
        addresses = self._resolve(host, port, url)
        for address in addresses:
            problem = address_problem(address, allow_private_networks=self._allow_private_networks,
                                      allowed_networks=self._allowed_networks)
            if problem:
                raise MediaRejected(f"refused {problem} {address} of {host}", url=url)
        return _Hop(scheme, host, port, parts.path, parts.query, addresses)

    @staticmethod
    def _resolve(host: str, port: int, url: str) -> tuple[IPAddress, ...]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise MediaUnavailable(f"cannot resolve {host}: {exc}", url=url) from exc
        except UnicodeError as exc:
            raise MediaRejected(f"invalid host name {host}", url=url) from exc
        return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))

    def _open(self, hop: _Hop) -> requests.Response:
        *others, last = hop.addresses[:MAX_ADDRESSES_TRIED]
        for address in others:
            try:
                return self._get(hop, address)
            except requests.ConnectionError as exc:
                # Another address of the name may answer (say IPv6 is unreachable from here).
                logger.debug("%s at %s failed (%s); trying its next address", hop.host, address, exc)
        return self._get(hop, last)

    def _get(self, hop: _Hop, address: IPAddress) -> requests.Response:
        return self._session.get(
            hop.url_for(address),
            # identity: a body cut short is then caught by its Content-Length; a gzip stream cut
            # short decodes into a fragment, and nothing checks that the stream ended.
            headers={"Host": hop.host_header, "Accept": "image/*", "Accept-Encoding": "identity"},
            stream=True,
            allow_redirects=False,
            timeout=self._timeout,
        )

    def _read(self, url: str, response: requests.Response) -> FetchedImage:
        declared = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        declared = TYPE_ALIASES.get(declared, declared)
        if not declared.startswith("image/"):
            raise MediaRejected(f"not an image: served as {declared or 'no content type'}", url=url, status=200)
        length = response.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and (len(length) > 19 or int(length) > self._max_bytes):
            raise MediaRejected(f"larger than {self._max_bytes} bytes ({length} announced)", url=url, status=200)
        return self._digest(url, declared, response)

    def _digest(self, url: str, declared: str, response: requests.Response) -> FetchedImage:
        digest, size, head = hashlib.sha256(), 0, b""
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            if size > self._max_bytes:
                raise MediaRejected(f"larger than {self._max_bytes} bytes", url=url, status=200)
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) == SNIFF_BYTES:
                    # Early, so an HTML page is refused before the rest of it is read.
                    _check_signature(url, declared, head)
            digest.update(chunk)
        if len(head) < SNIFF_BYTES:
            _check_signature(url, declared, head)
        return FetchedImage(declared, size, digest.hexdigest())


def _check_signature(url: str, declared: str, head: bytes) -> None:
    found = sniff_image_type(head)
    if found is None:
        raise MediaRejected(f"served as {declared} but not a PNG, JPEG, GIF or WebP image", url=url, status=200)
    if found != declared:
        raise MediaRejected(f"served as {declared} but the bytes are {found}", url=url, status=200)
