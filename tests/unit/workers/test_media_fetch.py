"""The image downloader against a real HTTP server on loopback, and its address guard."""
from __future__ import annotations

import hashlib
import ipaddress
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
import requests
import trustme
import urllib3.util.connection

from erp_sync.shared.errors import MediaRejected, MediaUnavailable
from erp_sync.workers.media_fetch import (
    FetchedImage,
    MediaFetcher,
    media_session,
    address_problem,
    sniff_image_type,
    translate_requests_error,
)
from tests.support.canned_http import answering
from tests.support.image_server import HTML, JPEG, MAX_BYTES, PNG, READ_TIMEOUT_S, ImageServer


def make_fetcher(session: requests.Session | None = None, **overrides) -> MediaFetcher:
    session = session or requests.Session()
    session.trust_env = False  # a proxy from the environment must not carry loopback requests
    options = dict(connect_timeout_s=1.0, read_timeout_s=READ_TIMEOUT_S, total_timeout_s=2.0,
                   max_bytes=MAX_BYTES, allow_private_networks=True)
    options.update(overrides)
    return MediaFetcher(session, **options)


@pytest.fixture
def connections(monkeypatch) -> list[tuple]:
    """Records every connection opened; one beyond 127.0.0.1 fails the test instead of leaving the machine."""
    real = urllib3.util.connection.create_connection
    opened: list[tuple] = []

    def guarded(address, *args, **kwargs):
        opened.append(address)
        if address[0] != "127.0.0.1":
            raise AssertionError(f"a connection to {address} was attempted")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded)
    return opened


def test_png_is_downloaded_with_its_size_and_digest(image_server):
    image = make_fetcher().fetch(f"{image_server.base}/tiny.png")

    assert image == FetchedImage("image/png", len(PNG), hashlib.sha256(PNG).hexdigest())


def test_jpeg_with_parameters_in_its_content_type_is_accepted(image_server):
    image = make_fetcher().fetch(f"{image_server.base}/photo.jpg")

    assert (image.content_type, image.byte_size) == ("image/jpeg", len(JPEG))


def test_redirect_to_another_local_path_is_followed(image_server):
    image = make_fetcher().fetch(f"{image_server.base}/redirect")

    assert image.sha256 == hashlib.sha256(PNG).hexdigest()
    assert image_server.hits == {"/redirect": 1, "/tiny.png": 1}


def test_connection_goes_to_the_checked_address_with_the_name_in_host(image_server, connections):
    make_fetcher().fetch(f"http://localhost:{image_server.server_port}/tiny.png")

    # the name is not resolved again at connect time, where a rebinding DNS could answer otherwise
    assert connections == [("127.0.0.1", image_server.server_port)]
    assert image_server.hosts == [f"localhost:{image_server.server_port}"]


@pytest.mark.parametrize(("path", "reason"), [
    ("/page-as.png", "served as image/png but not a PNG, JPEG, GIF or WebP image"),
    ("/jpeg-as.png", "served as image/png but the bytes are image/jpeg"),
    ("/notes.txt", "not an image: served as text/plain"),
    ("/huge.png", f"larger than {MAX_BYTES} bytes ({len(PNG) + MAX_BYTES} announced)"),
    ("/huge-chunked.png", f"larger than {MAX_BYTES} bytes"),
    ("/missing.png", "HTTP 404"),
    ("/redirect-loop", "more than 3 redirects"),
])
def test_what_can_never_be_an_image_is_rejected(image_server, path, reason):
    with pytest.raises(MediaRejected) as caught:
        make_fetcher().fetch(f"{image_server.base}{path}")

    assert str(caught.value) == reason
    assert caught.value.url.startswith(image_server.base)


def test_rejection_keeps_the_url_and_status(image_server):
    with pytest.raises(MediaRejected) as caught:
        make_fetcher().fetch(f"{image_server.base}/missing.png")

    assert (caught.value.url, caught.value.status) == (f"{image_server.base}/missing.png", 404)


@pytest.mark.parametrize(("path", "status"), [("/down.png", 503), ("/busy.png", 429)])
def test_server_trouble_is_transient(image_server, path, status):
    with pytest.raises(MediaUnavailable) as caught:
        make_fetcher().fetch(f"{image_server.base}{path}")

    assert caught.value.status == status


def test_an_image_cut_short_is_never_confirmed_as_a_fragment(image_server):
    # a host that would compress on the fly, and whose connection drops halfway through the image
    with pytest.raises(MediaUnavailable):
        make_fetcher(media_session()).fetch(f"{image_server.base}/cut-short.png")


def test_a_server_slower_than_the_read_timeout_is_transient(image_server):
    started = time.monotonic()
    with pytest.raises(MediaUnavailable, match="timed out"):
        make_fetcher().fetch(f"{image_server.base}/slow.png")

    assert time.monotonic() - started < READ_TIMEOUT_S * 3


def test_a_trickling_body_is_cut_at_the_total_timeout(image_server):
    with pytest.raises(MediaUnavailable, match="took longer than 1.0 s"):
        make_fetcher(total_timeout_s=1.0).fetch(f"{image_server.base}/trickle.png")


def test_trickling_headers_are_cut_at_the_total_timeout_too(image_server):
    with pytest.raises(MediaUnavailable, match="took longer than 1.0 s"):
        make_fetcher(total_timeout_s=1.0).fetch(f"{image_server.base}/trickling-headers.png")


def test_through_a_proxy_trickling_headers_are_cut_at_the_total_timeout_too(image_server):
    # given a session sending its requests through a proxy (the image server answers as one)
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"http": image_server.base}

    # when an image whose headers trickle is fetched through it, then the download ends at its deadline
    with pytest.raises(MediaUnavailable, match="took longer than 1.0 s"):
        make_fetcher(session, total_timeout_s=1.0).fetch(f"{image_server.base}/trickling-headers.png")
    assert image_server.hits["/trickling-headers.png"] == 1


def test_a_closed_port_is_transient():
    with pytest.raises(MediaUnavailable, match="connection failed"):
        make_fetcher().fetch(f"http://127.0.0.1:{_closed_port()}/tiny.png")


def _closed_port() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()
    return port


def test_https_checks_the_certificate_of_the_name_while_connecting_to_the_address(tmp_path):
    # given an HTTPS server on 127.0.0.1 whose certificate names only "localhost"
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    server = ImageServer()
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    session = requests.Session()
    session.verify = str(ca_file)
    fetcher = make_fetcher(session)
    try:
        # when fetched by name, then the certificate matches; by address, it does not
        image = fetcher.fetch(f"https://localhost:{server.server_port}/tiny.png")
        with pytest.raises(MediaRejected, match="TLS failed"):
            fetcher.fetch(f"https://127.0.0.1:{server.server_port}/tiny.png")
    finally:
        server.shutdown()
        server.server_close()

    assert image.sha256 == hashlib.sha256(PNG).hexdigest()


# --- request forgery: refused at check time, before any connection ---

PRIVATE_AND_SPECIAL = [
    "http://127.0.0.1/",
    "http://127.1:8080/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://localhost/",
]
NOT_PLAIN_HTTP = [
    "ftp://cdn.example.com/a.png",
    "file:///etc/passwd",
    "gopher://cdn.example.com/",
    "data:image/png;base64,iVBORw0KGgo=",
    "//cdn.example.com/a.png",
    "http:///a.png",
    "http://user:secret@cdn.example.com/a.png",
    "http://cdn.example.com:99999/a.png",
]


@pytest.mark.parametrize(("url", "says"), [(url, "refused") for url in PRIVATE_AND_SPECIAL]
                         + [(url, None) for url in NOT_PLAIN_HTTP])
def test_private_addresses_and_urls_other_than_plain_http_are_refused_without_connecting(connections, url, says):
    with pytest.raises(MediaRejected, match=says):
        make_fetcher(allow_private_networks=False).fetch(url)

    assert connections == []


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.2]:{port}/tiny.png",
    "http://127.0.0.2:{port}/tiny.png",
    "file:///etc/passwd",
])
def test_every_redirect_hop_is_checked_like_the_first(image_server, connections, target):
    # given 127.0.0.1 allowed as an exception, so that only the first hop reaches the local server
    fetcher = make_fetcher(allow_private_networks=False, allowed_networks=[ipaddress.ip_network("127.0.0.1/32")])
    target = target.format(port=image_server.server_port)

    # when that server redirects elsewhere
    with pytest.raises(MediaRejected) as caught:
        fetcher.fetch(f"{image_server.base}/redirect?to={quote(target, safe='')}")

    # then the next hop is refused before any connection to it
    assert caught.value.url == target
    assert connections == [("127.0.0.1", image_server.server_port)]
    assert sum(image_server.hits.values()) == 1


@pytest.mark.parametrize(("address", "allowed"), [
    ("8.8.8.8", True),
    ("2606:4700:4700::1111", True),
    ("127.0.0.1", False),
    ("10.0.0.1", False),
    ("172.31.255.255", False),
    ("192.168.0.1", False),
    ("169.254.169.254", False),
    ("100.64.0.1", False),
    ("240.0.0.1", False),
    ("::1", False),
    ("fe80::1", False),
    ("::ffff:10.0.0.1", False),
    ("::ffff:8.8.8.8", True),
    ("0.0.0.0", False),
    ("224.0.1.1", False),
])
def test_address_guard(address, allowed):
    problem = address_problem(ipaddress.ip_address(address), allow_private_networks=False)

    assert (problem is None) is allowed, problem


@pytest.mark.parametrize(("address", "allowed"), [
    ("127.0.0.1", True), ("10.0.0.1", True), ("fe80::1", True), ("0.0.0.0", False), ("ff02::1", False),
])
def test_private_networks_can_be_allowed_but_never_unspecified_or_multicast(address, allowed):
    problem = address_problem(ipaddress.ip_address(address), allow_private_networks=True)

    assert (problem is None) is allowed, problem


@pytest.mark.parametrize(("head", "kind"), [
    (PNG[:12], "image/png"),
    (JPEG[:12], "image/jpeg"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00", "image/gif"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    (HTML[:12], None),
    (b"<svg xmlns=", None),
    (b"", None),
])
def test_image_signatures(head, kind):
    assert sniff_image_type(head) == kind


def _all_request_exceptions() -> list[type[requests.RequestException]]:
    found, todo = [], [requests.RequestException]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(sub for sub in cls.__subclasses__() if sub.__module__.startswith("requests"))
    return found


@pytest.mark.parametrize("error_class", _all_request_exceptions(), ids=lambda cls: cls.__name__)
def test_every_requests_exception_maps_to_one_of_ours(error_class):
    args = ("boom", "", 0) if issubclass(error_class, ValueError) else ("boom",)  # JSON errors want doc, pos
    error = translate_requests_error(error_class(*args), "http://cdn.example.com/a.png")

    assert isinstance(error, (MediaUnavailable, MediaRejected))
    assert error.url == "http://cdn.example.com/a.png"


@pytest.mark.parametrize(("error", "ours"), [
    (requests.ConnectTimeout(), MediaUnavailable),
    (requests.ReadTimeout(), MediaUnavailable),
    (requests.ConnectionError(), MediaUnavailable),
    (requests.exceptions.ChunkedEncodingError(), MediaUnavailable),
    (requests.exceptions.SSLError(), MediaRejected),
    (requests.exceptions.InvalidURL(), MediaRejected),
])
def test_network_faults_are_transient_and_url_faults_permanent(error, ours):
    assert type(translate_requests_error(error, "http://x/")) is ours


def _without_proxies(monkeypatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_without_a_proxy_the_session_reads_the_environment_once_and_keeps_its_ca_bundle(monkeypatch):
    _without_proxies(monkeypatch)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/erp-sync/ca.pem")

    session = media_session()

    assert session.trust_env is False
    assert session.verify == "/etc/erp-sync/ca.pem"


def test_with_a_proxy_configured_every_download_still_goes_by_the_environment(monkeypatch):
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")

    assert media_session().trust_env is True


def test_a_url_on_port_0_is_rejected_not_fetched_from_the_default_port():
    with pytest.raises(MediaRejected, match="port 0"):
        make_fetcher().fetch("http://127.0.0.1:0/x.png")


@pytest.mark.parametrize("status, headers, says", [
    (302, {"Location": "http://[::1/x.png"}, "cannot be read"),
    (302, {"Location": "/caf\xe9.png"}, "cannot be read"),
    (200, {"Content-Type": "image/png", "Content-Length": "9" * 5000}, "larger than"),
], ids=["a Location that is no URL", "a Location not in ASCII", "a Content-Length of 5,000 digits"])
def test_an_answer_that_cannot_be_read_rejects_that_image_alone(status, headers, says):
    # given an image server answering with a header no library reads
    with answering(status, PNG, headers) as base:
        # when the image is fetched
        with pytest.raises(MediaRejected) as rejected:
            make_fetcher().fetch(f"{base}/img.png")

    # then that image is rejected (an error raised otherwise parks the worker's whole batch)
    assert says in str(rejected.value)
