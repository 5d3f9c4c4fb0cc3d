"""The bridge from granian's RSGI to a WSGI app: the environ it builds, and how it reads bodies.

The protocol object is a stand-in for granian's (pure logic: what the bridge does with the
chunks it is given, and when); the e2e tier runs the real server against slow clients.
"""
from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, request

from erp_sync.ingress import errors, health
from erp_sync.ingress.bridge import BUSY, WsgiBridge, run_wsgi, wsgi_environ

LIMIT = 100


class Headers(dict[str, str]):
    """granian's header mapping: lower-case names, get/items/in."""


@dataclass
class Scope:
    method: str = "POST"
    path: str = "/webhooks/erp"
    query_string: str = ""
    headers: Headers = field(default_factory=Headers)
    proto: str = "http"
    http_version: str = "1.1"
    scheme: str = "http"
    server: str = "127.0.0.1:8000"
    client: str = "127.0.0.1:50123"
    authority: str | None = None


class Protocol:
    """Hands out `chunks`, each after `delay_s`; records the answer."""

    def __init__(self, chunks: list[bytes], delay_s: float = 0.0) -> None:
        self.chunks, self.delay_s = chunks, delay_s
        self.read: list[bytes] = []
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            await asyncio.sleep(self.delay_s)
            self.read.append(chunk)
            yield chunk

    async def __call__(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.answer = (status, headers, body)


def echo_app() -> Flask:
    """Answers with what it was given: length, body, path and two headers."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = LIMIT

    @app.route("/<path:path>", methods=["GET", "POST"])
    def echo(path: str) -> dict[str, Any]:
        return {"length": request.content_length, "body": request.get_data().decode(), "path": request.path,
                "type": request.content_type, "signature": request.headers.get("X-ERP-Signature")}

    return app


def serve_one(scope: Scope, protocol: Protocol, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    bridge = WsgiBridge(echo_app(), threads=2, body_timeout_s=timeout_s, max_body_bytes=LIMIT)

    async def main() -> None:
        bridge.__rsgi_init__(asyncio.get_running_loop())
        await bridge.__rsgi__(scope, protocol)  # type: ignore[arg-type]

    asyncio.run(main())
    bridge.__rsgi_del__(asyncio.new_event_loop())
    assert protocol.answer is not None
    status, headers, body = protocol.answer
    return status, dict(headers), body


def test_a_complete_body_reaches_the_app_with_its_headers():
    scope = Scope(headers=Headers({"content-length": "7", "content-type": "application/json",
                                   "x-erp-signature": "abc"}))

    status, _, body = serve_one(scope, Protocol([b'{"a"', b":1}"]))

    assert status == 200
    assert json.loads(body) == {"length": 7, "body": '{"a":1}', "path": "/webhooks/erp",
                                "type": "application/json", "signature": "abc"}


def test_a_body_slower_than_the_timeout_is_answered_408_and_its_connection_closed():
    scope = Scope(headers=Headers({"content-length": "50"}))
    protocol = Protocol([b"a"] * 50, delay_s=0.05)

    status, headers, _ = serve_one(scope, protocol, timeout_s=0.3)

    assert status == 408
    assert headers["connection"] == "close"
    assert len(protocol.read) < 50


def test_a_chunked_body_over_the_limit_is_read_no_further_and_the_app_answers_413():
    scope = Scope(headers=Headers({"transfer-encoding": "chunked"}))
    protocol = Protocol([b"x" * 60] * 10)

    status, _, _ = serve_one(scope, protocol)

    assert status == 413
    assert len(protocol.read) == 2


def test_a_declared_length_over_the_limit_is_not_read_at_all():
    scope = Scope(headers=Headers({"content-length": str(LIMIT * 1000)}))
    protocol = Protocol([b"x" * LIMIT] * 1000)

    status, _, _ = serve_one(scope, protocol)

    assert status == 413
    assert protocol.read == []


def test_a_request_without_a_body_is_not_waited_for():
    protocol = Protocol([b"never read"], delay_s=10)

    status, _, body = serve_one(Scope(method="GET", path="/healthz"), protocol, timeout_s=0.5)

    assert status == 200
    assert json.loads(body)["length"] is None
    assert protocol.read == []


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v1/products/SKU 1", "/api/v1/products/SKU 1"),
    ("/api/v1/products/é", "/api/v1/products/\u00c3\u00a9"),  # UTF-8 bytes, as Latin-1 (PEP 3333)
])
def test_the_environ_follows_pep_3333(path, expected):
    scope = Scope(method="GET", path=path, query_string="a=1", client="[::1]:4000",
                  headers=Headers({"host": "door.example", "content-type": "text/plain", "x-many": "1"}))

    environ = wsgi_environ(scope, b"", None)  # type: ignore[arg-type]

    assert environ["PATH_INFO"] == expected
    assert (environ["QUERY_STRING"], environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("a=1", "::1", "8000")
    assert (environ["HTTP_HOST"], environ["CONTENT_TYPE"], environ["HTTP_X_MANY"]) == ("door.example", "text/plain", "1")
    assert "CONTENT_LENGTH" not in environ and environ["wsgi.input"].read() == b""


def test_an_app_that_raises_gets_a_500_not_a_dead_thread():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    assert run_wsgi(broken, wsgi_environ(Scope(), b"", None))[0] == 500  # type: ignore[arg-type]


def held_app(release: threading.Event, started: threading.Semaphore) -> Flask:
    """`/held` answers once `release` is set (a request waiting out a lock); `started` counts those begun."""
    app = Flask(__name__)

    @app.get("/held")
    def held() -> dict[str, str]:
        started.release()
        release.wait(10)
        return {"status": "done"}

    return app


def gets(path: str) -> tuple[Scope, Protocol]:
    return Scope(method="GET", path=path), Protocol([])


def test_the_liveness_probe_is_answered_while_every_request_thread_is_held():
    # given a bridge of one thread, held by a request waiting out a lock
    release, started = threading.Event(), threading.Semaphore(0)
    bridge = WsgiBridge(held_app(release, started), threads=1, body_timeout_s=5, max_body_bytes=LIMIT,
                        on_the_loop={health.LIVENESS_PATH: health.ALIVE_ANSWER})
    probe = Protocol([])

    async def main() -> None:
        bridge.__rsgi_init__(asyncio.get_running_loop())
        held = asyncio.ensure_future(bridge.__rsgi__(*gets("/held")))  # type: ignore[arg-type]
        await asyncio.to_thread(started.acquire, timeout=5)
        # when the liveness probe asks
        await asyncio.wait_for(bridge.__rsgi__(Scope(method="GET", path="/healthz"), probe), 1)  # type: ignore[arg-type]
        release.set()
        await held

    asyncio.run(main())
    bridge.__rsgi_del__(asyncio.new_event_loop())

    # then it is answered at once, as the app itself answers it
    assert probe.answer == health.ALIVE_ANSWER


def test_requests_beyond_as_many_again_as_the_threads_are_answered_busy_at_once():
    # given a bridge of one thread, held, and one request waiting for it
    release, started = threading.Event(), threading.Semaphore(0)
    bridge = WsgiBridge(held_app(release, started), threads=1, body_timeout_s=5, max_body_bytes=LIMIT)
    waiting, beyond, after = Protocol([]), Protocol([]), Protocol([])

    async def main() -> None:
        bridge.__rsgi_init__(asyncio.get_running_loop())
        running = asyncio.ensure_future(bridge.__rsgi__(*gets("/held")))  # type: ignore[arg-type]
        await asyncio.to_thread(started.acquire, timeout=5)
        queued = asyncio.ensure_future(bridge.__rsgi__(Scope(method="GET", path="/held"), waiting))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        # when one more comes
        await asyncio.wait_for(bridge.__rsgi__(Scope(method="GET", path="/held"), beyond), 1)  # type: ignore[arg-type]
        release.set()
        await asyncio.gather(running, queued)
        await bridge.__rsgi__(Scope(method="GET", path="/held"), after)  # type: ignore[arg-type]

    asyncio.run(main())
    bridge.__rsgi_del__(asyncio.new_event_loop())

    # then it is told to come back shortly, and the ones before it and after it are served
    assert beyond.answer == BUSY and ("retry-after", "1") in BUSY[1]
    assert [p.answer[0] for p in (waiting, after) if p.answer] == [200, 200]


def test_the_liveness_answer_on_the_loop_is_the_apps_own():
    app = Flask("erp_sync.ingress")
    errors.init_app(app)
    app.register_blueprint(health.bp)

    flask_answer = app.test_client().get(health.LIVENESS_PATH)

    status, headers, body = health.ALIVE_ANSWER
    assert (status, body, headers) == (flask_answer.status_code, flask_answer.get_data(),
                                       list(flask_answer.headers.items()))
