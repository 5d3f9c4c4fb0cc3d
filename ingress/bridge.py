"""Serves a WSGI app under granian's RSGI interface: Python threads see only complete requests.

granian reads request headers in Rust, without a thread per connection, and cuts a client whose
headers are too slow. Its own WSGI interface then hands the request to a Python thread that reads
the body itself, so a client trickling a body would hold that thread for as long as it likes. Here
the body is read on the worker's event loop instead, within a deadline and up to a size cap, and
only a complete request goes to the pool of threads that runs the app.

The threads can all be held up at once (every request waiting out a lock on a table, or CPU short):
the liveness probe's path is then answered on the event loop all the same, the process being alive,
and requests beyond as many again as there are threads are answered 503 at once rather than queued
without end behind them.
"""
from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from granian.rsgi import HTTPProtocol, ProtocolClosed, ProtocolError, Scope  # type: ignore[attr-defined]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]
StartResponse = Callable[..., Callable[[bytes], object]]


class WsgiApp(Protocol):
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]: ...


# A client whose body did not arrive in time gets this, and its connection is closed.
TOO_SLOW: Answer = (408, [("content-type", "application/json"), ("x-content-type-options", "nosniff"),
                          ("connection", "close")],
                    b'{"error": "the request body did not arrive in time", "details": []}')
FAILED: Answer = (500, [("content-type", "application/json"), ("connection", "close")],
                  b'{"error": "internal server error", "details": []}')
BUSY: Answer = (503, [("content-type", "application/json"), ("x-content-type-options", "nosniff"),
                      ("retry-after", "1")],
                b'{"error": "the server is busy: too many requests are waiting; try again shortly", "details": []}')
# The body is read whole before the app runs: the app sees its length, never its framing.
BODY_FRAMING = frozenset({"content-length", "transfer-encoding"})
# Requests waiting for a thread, at most, for each thread: beyond, 503 at once.
WAITING_PER_THREAD = 1
BUSY_LOG_INTERVAL_S = 10.0


class WsgiBridge:
    """An RSGI app running `app` on `threads` threads, each request's body read within `body_timeout_s`.

    A body longer than `max_body_bytes` is not read further: the app gets the first
    `max_body_bytes + 1` bytes with that as CONTENT_LENGTH (or the declared length, unread), so an
    app limiting bodies to `max_body_bytes` answers 413 without the rest ever being buffered.
    A GET of a path in `on_the_loop` gets its answer there, without a thread (the app's own answer
    to it, which must not depend on the request).
    """

    def __init__(self, app: WsgiApp, *, threads: int, body_timeout_s: float, max_body_bytes: int,
                 on_close: Callable[[], None] = lambda: None, on_the_loop: Mapping[str, Answer] | None = None) -> None:
        self._app = app
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")
        self._places = threading.BoundedSemaphore(threads * (1 + WAITING_PER_THREAD))
        self._busy_logged_at = float("-inf")
        self._on_the_loop = dict(on_the_loop or {})
        self._body_timeout_s = body_timeout_s
        self._max_body_bytes = max_body_bytes
        self._on_close = on_close

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._threads.shutdown(wait=True)
        self._on_close()

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto != "http":
            return
        if scope.method == "GET" and (ready := self._on_the_loop.get(scope.path)) is not None:
            protocol.response_bytes(*ready)
            return
        read = await self.read_body(scope, protocol)
        if read is None:
            return
        if not self._places.acquire(blocking=False):
            self._log_busy()
            protocol.response_bytes(*BUSY)
            return
        body, length = read
        answered = self._loop.create_future()
        try:
            self._threads.submit(self._answer, wsgi_environ(scope, body, length), protocol, answered)
        except BaseException:
            self._places.release()  # no thread took it (the pool shut down, an environ not built)
            raise
        # granian answers 500 for a request whose coroutine ends unanswered: wait for the thread.
        await answered

    def _log_busy(self) -> None:
        if (now := time.monotonic()) - self._busy_logged_at >= BUSY_LOG_INTERVAL_S:
            self._busy_logged_at = now
            logger.warning("every request thread is taken and as many requests wait: answering 503 busy "
                           "(said once in %g s)", BUSY_LOG_INTERVAL_S)

    async def read_body(self, scope: Scope, protocol: HTTPProtocol) -> tuple[bytes, int | None] | None:
        """The body and the CONTENT_LENGTH to tell the app; None once answered 408 or the client left."""
        if "content-length" not in scope.headers and "transfer-encoding" not in scope.headers:
            return b"", None
        try:
            async with asyncio.timeout(self._body_timeout_s):
                return await self._read_body(scope.headers.get("content-length"), protocol)
        except TimeoutError:
            logger.info("closed a connection from %s: its request body took over %s s",
                        scope.client, self._body_timeout_s)
            protocol.response_bytes(*TOO_SLOW)
            return None
        except (ProtocolClosed, ProtocolError):
            return None  # the client went away mid-body

    def _answer(self, environ: dict[str, Any], protocol: HTTPProtocol, answered: asyncio.Future[None]) -> None:
        # The answer leaves from this thread; the event loop only learns afterwards that it may let go.
        try:
            protocol.response_bytes(*run_wsgi(self._app, environ))
        finally:
            self._places.release()
            self._loop.call_soon_threadsafe(answered.set_result, None)

    async def _read_body(self, declared: str | None, protocol: HTTPProtocol) -> tuple[bytes, int]:
        """The body (at most max_body_bytes + 1 bytes) and the CONTENT_LENGTH to tell the app."""
        if declared is not None:
            # hyper has checked that the header is a number and holds the body to it.
            length = int(declared)
            if length > self._max_body_bytes:
                return b"", length
            return (await protocol() if length else b""), length
        chunks: list[bytes] = []
        size = 0
        async for chunk in protocol:
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body_bytes:
                break
        return b"".join(chunks)[: self._max_body_bytes + 1], min(size, self._max_body_bytes + 1)


def wsgi_environ(scope: Scope, body: bytes, length: int | None) -> dict[str, Any]:
    """PEP 3333's environ for one request whose body is already read."""
    server_host, _, server_port = scope.server.rpartition(":")
    client_host, _, client_port = scope.client.rpartition(":")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope.method,
        "SCRIPT_NAME": "",
        # granian gives the path percent-decoded as UTF-8; WSGI wants those bytes as Latin-1.
        "PATH_INFO": scope.path.encode("utf-8", "surrogateescape").decode("latin-1"),
        "QUERY_STRING": scope.query_string,
        "SERVER_NAME": server_host.strip("[]"),
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
        "REMOTE_ADDR": client_host.strip("[]"),
        "REMOTE_PORT": client_port,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    for name, value in scope.headers.items():
        if name in BODY_FRAMING:
            continue
        key = "CONTENT_TYPE" if name == "content-type" else "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if "HTTP_HOST" not in environ and scope.authority:
        environ["HTTP_HOST"] = scope.authority
    return environ


def run_wsgi(app: WsgiApp, environ: dict[str, Any]) -> Answer:
    """Call the app on this thread and collect its whole answer."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: Headers, exc_info: Any = None) -> Callable[[bytes], object]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    try:
        result = app(environ, start_response)
        try:
            written.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:
        logger.exception("%s %s failed", environ["REQUEST_METHOD"], environ["PATH_INFO"])
        return FAILED
    if not started:
        return FAILED
    status, headers = started
    return int(status[:3]), headers, b"".join(written)
