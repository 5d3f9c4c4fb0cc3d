"""A real HTTP server on 127.0.0.1 serving test images and faults, counting requests per path; and its fixture.

`python -m tests.support.image_server --port N` serves it in a process of its own (the media and bulk
benchmarks, so its CPU is not counted as the worker's).
"""
from __future__ import annotations

import argparse
import gzip
import random
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# A valid 1x1 grey PNG, built here so the test owns every byte.
PNG = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + _png_chunk(b"IDAT", zlib.compress(b"\x00\x80")) + _png_chunk(b"IEND", b""))
# A PNG of 3,000 bytes that gzip barely shrinks (its tail is noise, fixed by the seed).
LARGE_PNG = PNG + random.Random(7).randbytes(3000 - len(PNG))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
HTML = b"<!doctype html><html><body>not an image</body></html>"
MAX_BYTES = 4096
READ_TIMEOUT_S = 0.3
# /together.png answers only once this many requests for it are open at the same time.
TOGETHER = 4
TOGETHER_WAIT_S = 5.0


class ImageServer(ThreadingHTTPServer):
    """Serves the test images and faults on 127.0.0.1; counts the requests per path."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Images)
        self.hits: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.base = f"http://127.0.0.1:{self.server_port}"
        self.together = threading.Barrier(TOGETHER)

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up on a refused body is expected here


class _Images(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle the body would wait for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    server: ImageServer

    def log_message(self, format, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits[urlsplit(self.path).path] += 1
        self.server.hosts.append(self.headers.get("Host", ""))
        route = {
            "/healthz": lambda: self._send(200, "text/plain", b"ok"),
            "/tiny.png": lambda: self._send(200, "image/png", PNG),
            "/photo.jpg": lambda: self._send(200, "image/jpeg; charset=binary", JPEG),
            "/page-as.png": lambda: self._send(200, "image/png", HTML),
            "/jpeg-as.png": lambda: self._send(200, "image/png", JPEG),
            "/notes.txt": lambda: self._send(200, "text/plain", b"hello"),
            "/huge.png": lambda: self._send(200, "image/png", PNG + b"\x00" * MAX_BYTES),
            "/huge-chunked.png": self._huge_chunked,
            "/missing.png": lambda: self._send(404, "text/plain", b"no such image"),
            "/down.png": lambda: self._send(503, "text/plain", b"try later"),
            "/busy.png": lambda: self._send(429, "text/plain", b"slow down"),
            "/slow.png": self._slow,
            "/cut-short.png": self._cut_short,
            "/together.png": self._together,
            "/cdn.png": self._cdn,
            "/trickle.png": self._trickle,
            "/trickling-headers.png": self._trickle_headers,
            "/redirect": lambda: self._redirect(parse_qs(urlsplit(self.path).query).get("to", ["/tiny.png"])[0]),
            "/redirect-loop": lambda: self._redirect("/redirect-loop"),
        }.get(urlsplit(self.path).path, lambda: self._send(404, "text/plain", b"unknown"))  # a proxy's absolute form too
        route()

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _huge_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in [PNG] + [b"\x00" * 1024] * 8:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")

    def _cut_short(self) -> None:
        # Half of a large image, then the connection closed: gzip-encoded with no length when the
        # client accepts gzip (as a web server compressing on the fly answers), else with its length.
        gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
        body = gzip.compress(LARGE_PNG) if gzipped else LARGE_PNG
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Encoding" if gzipped else "Content-Length", "gzip" if gzipped else str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _cdn(self) -> None:
        # An image server some way off (the media benchmark): answers after ?ms= milliseconds.
        time.sleep(float(parse_qs(urlsplit(self.path).query).get("ms", ["0"])[0]) / 1000)
        self._send(200, "image/png", PNG)

    def _together(self) -> None:
        try:
            self.server.together.wait(TOGETHER_WAIT_S)
        except threading.BrokenBarrierError:
            self._send(503, "text/plain", b"the others did not come")
            return
        self._send(200, "image/png", PNG)

    def _slow(self) -> None:
        time.sleep(READ_TIMEOUT_S * 4)
        self._send(200, "image/png", PNG)

    def _trickle_headers(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(20):  # each byte of a header within the read timeout, the whole beyond the total
            self.wfile.flush()
            time.sleep(READ_TIMEOUT_S / 3)
            self.wfile.write(b"a")

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG) + 20))
        self.end_headers()
        self.wfile.write(PNG)
        for _ in range(20):  # each byte within the read timeout, the whole beyond the total
            self.wfile.flush()
            time.sleep(READ_TIMEOUT_S / 3)
            self.wfile.write(b"\x00")


@contextmanager
def running_image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    with running_image_server() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the test images on 127.0.0.1 until stopped.")
    parser.add_argument("--port", type=int, required=True)
    ImageServer(parser.parse_args(argv).port).serve_forever()


if __name__ == "__main__":
    main()
