"""The ERP's door under granian: the webhook answered on the event loop, every other route by Flask on threads.

A webhook is the door's whole load. Through the WSGI bridge it crossed threads four times (loop to
request thread, to the publisher's I/O thread and back, back to the loop), and those crossings,
not the checks, were most of its CPU. Here it stays on the worker's event loop from first byte to
answer: the body is read as the bridge reads it, the rules are the Flask view's own
(ingress/webhooks.py, `WebhookRules`), and the publish and its confirm go through a connection on
the same loop (shared/async_publisher.py). The answers are the view's, byte for byte: same
statuses, JSON bodies, headers and metrics. Everything else (probes, /metrics, /openapi.json, a
webhook sent with another method) goes to the Flask app through the bridge as before.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from flask import Flask
from granian.rsgi import HTTPProtocol, Scope  # type: ignore[attr-defined]
from werkzeug.exceptions import InternalServerError
from werkzeug.http import parse_options_header

from erp_sync.ingress.answers import answer
from erp_sync.ingress.bridge import WsgiBridge
from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.webhooks import WEBHOOK_PATH, WebhookRules
from erp_sync.shared.async_publisher import LoopPublisher
from erp_sync.shared.errors import BrokerUnavailable, PublishRejected

logger = logging.getLogger(__name__)

class Door:
    """An RSGI app: POST /webhooks/erp natively, with `publisher` on the worker's loop; the rest via `bridge`."""

    def __init__(self, app: Flask, bridge: WsgiBridge, publisher: LoopPublisher, *, stop_timeout_s: float) -> None:
        self._rules = WebhookRules.of(app)
        self._max_body_bytes: int = app.config["MAX_CONTENT_LENGTH"]
        self._bridge = bridge
        self._publisher = publisher
        self._stop_timeout_s = stop_timeout_s
        self._under_way: set[asyncio.Future[None]] = set()

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bridge.__rsgi_init__(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        # granian stops running the loop when told to stop: webhooks still waiting on a confirm
        # get it to themselves until they are answered, then the connection closes.
        loop.run_until_complete(self._finish())
        self._bridge.__rsgi_del__(loop)

    async def _finish(self) -> None:
        if self._under_way:
            await asyncio.wait(self._under_way, timeout=self._stop_timeout_s)
        await self._publisher.close()

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto == "http" and scope.method == "POST" and scope.path == WEBHOOK_PATH:
            done = asyncio.get_running_loop().create_future()
            self._under_way.add(done)
            try:
                await self._webhook(scope, protocol)
            finally:
                self._under_way.discard(done)
                done.set_result(None)
            return
        await self._bridge.__rsgi__(scope, protocol)

    async def _webhook(self, scope: Scope, protocol: HTTPProtocol) -> None:
        read = await self._bridge.read_body(scope, protocol)
        if read is None:
            return  # answered 408, or the client left
        raw, length = read
        body: dict[str, Any]
        headers: dict[str, str] = {}
        try:
            status, body = 202, await self._accept(scope, raw, length)
        except ApiError as error:
            status, body, headers = error.status, error.to_dict(), error.headers
        except Exception:
            logger.exception("POST %s failed", WEBHOOK_PATH)
            status, body = 500, {"error": InternalServerError.description, "details": []}
        protocol.response_bytes(status, *answer(body, headers))

    async def _accept(self, scope: Scope, raw: bytes, length: int | None) -> dict[str, str]:
        """The body of the 202, or the ApiError the Flask view raises for the same request."""
        if length is not None and length > self._max_body_bytes:
            # Flask's MAX_CONTENT_LENGTH check, before anything else.
            raise self._rules.too_large()
        mimetype = parse_options_header(scope.headers.get("content-type", ""))[0].lower()
        event, message = self._rules.admit(raw, scope.headers.get("x-erp-signature"), mimetype,
                                           scope.headers.get("content-encoding"))
        started = time.perf_counter()
        try:
            await self._publisher.publish(message)
        except (BrokerUnavailable, PublishRejected) as exc:
            raise self._rules.refused(event, exc) from exc
        return self._rules.accepted(event, time.perf_counter() - started)
