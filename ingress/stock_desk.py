"""The storefront API under granian: its usual read answered on the event loop, every other request by Flask.

`GET /api/v1/inventory/<sku>` of a SKU the ERP has sent a figure for is most of the API's load.
Through the WSGI bridge each one crossed to a request thread and back and ran Flask, SQLAlchemy and
its pool around a query of a tenth of a millisecond: about a millisecond of CPU a read under load.
Here it is read on the worker's event loop, on a pool of async connections of its own, with the
same SQL (ingress/availability.py) and answered with the same bytes. Only that answer is given
here: every other request, and every read this path would not answer 200 (no or a wrong token, a
SKU with a slash, a query string, a SKU without a figure, the database failing), goes to Flask
through the bridge, whose answers and rules stay the one home of all the others.
"""
from __future__ import annotations

import asyncio
import logging

import psycopg
from flask import Flask
from granian.rsgi import HTTPProtocol, Scope  # type: ignore[attr-defined]
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from erp_sync.ingress.answers import answer
from erp_sync.ingress.availability import STOCK_WITH_A_FIGURE, StockView, stock_of
from erp_sync.ingress.bearer import bearer_token_matches
from erp_sync.ingress.bridge import WsgiBridge
from erp_sync.ingress.read_api import stock_json
from erp_sync.ingress.storefront import api_tokens
from erp_sync.shared.fields import is_storable_identifier
from erp_sync.shared.pg import conninfo, connect_args

logger = logging.getLogger(__name__)

STOCK_PATH = "/api/v1/inventory/"
# A read waiting longer than this for a connection goes to Flask, whose pool waits its own time.
CONNECTION_WAIT_S = 0.25
# And for a lock (a migration's on stock_levels): Flask then waits DATABASE_LOCK_TIMEOUT_MS and
# answers 503; the whole timeout here first made the storefront wait it twice.
LOCK_WAIT_MS = 250
# After a failed read, reads go straight to Flask for this long: in an outage the storefront gets
# Flask's 503 at once, not after a wait here first.
LEFT_TO_FLASK_AFTER_A_FAILURE_S = 5.0
# psycopg_pool's own: how long it retries a lost connection before giving it up. The next read that
# finds no connection then opens one, so a longer outage costs nothing but its reads going to Flask.
RECONNECT_TIMEOUT_S = 300.0


class StockDesk:
    """An RSGI app: a SKU's stock read on the loop, on `pool_size` connections of its own; the rest via `bridge`."""

    def __init__(self, app: Flask, bridge: WsgiBridge, database_url: str, *, pool_size: int,
                 lock_timeout_ms: int = LOCK_WAIT_MS, reconnect_timeout_s: float = RECONNECT_TIMEOUT_S) -> None:
        self._tokens = api_tokens(app)
        self._bridge = bridge
        # A read held by a lock goes to Flask, which answers 503 with Retry-After.
        self._pool = AsyncConnectionPool(conninfo(database_url), min_size=1, max_size=pool_size, open=False,
                                         kwargs={**connect_args(lock_timeout_ms), "autocommit": True},
                                         reconnect_timeout=reconnect_timeout_s)
        self._opened: asyncio.Future[None] | None = None
        self._failed_at = float("-inf")
        self._checking: asyncio.Future[None] | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._bridge.__rsgi_init__(loop)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._checking is not None:
            self._checking.cancel()
        if self._opened is not None:
            loop.run_until_complete(self._pool.close())
        self._bridge.__rsgi_del__(loop)

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        sku = self._stock_read(scope)
        view = await self._stock(sku) if sku is not None else None
        if view is None:
            await self._bridge.__rsgi__(scope, protocol)
            return
        protocol.response_bytes(200, *answer(stock_json(view), {}))

    def _stock_read(self, scope: Scope) -> str | None:
        """The SKU of a read this path answers as Flask would, or None for Flask's to answer."""
        if scope.proto != "http" or scope.method != "GET" or scope.query_string:
            return None
        if not scope.path.startswith(STOCK_PATH) or "content-length" in scope.headers \
                or "transfer-encoding" in scope.headers:
            return None
        sku = scope.path[len(STOCK_PATH):]
        # A SKU with a slash could be a route under it (…/history): Flask's routing decides those.
        if "/" in sku or not is_storable_identifier(sku):
            return None
        # One Authorization header, as the bridge would hand Flask several joined into one it refuses.
        authorizations = [value for name, value in scope.headers.items() if name == "authorization"]
        if len(authorizations) != 1 or not bearer_token_matches(self._tokens, authorizations[0]):
            return None
        return sku

    async def _stock(self, sku: str) -> StockView | None:
        """The SKU's stock if it has a figure; None when it has none or the database fails (Flask then answers)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._failed_at < LEFT_TO_FLASK_AFTER_A_FAILURE_S:
            return None
        if self._opened is None:
            self._opened = asyncio.ensure_future(self._pool.open(wait=False))
        try:
            await self._opened
            async with self._pool.connection(timeout=CONNECTION_WAIT_S) as connection:
                cursor = await connection.execute(STOCK_WITH_A_FIGURE, {"sku": sku})
                return stock_of(sku, await cursor.fetchall())
        except (psycopg.Error, PoolTimeout) as exc:
            # No connection within the wait is an outage or a database too slow to answer: Flask's.
            self._failed_at = loop.time()
            if self._checking is None or self._checking.done():
                # The other idle connections went down with this one, most likely: each would fail a
                # read of its own after the pause, so they are tested and replaced now.
                self._checking = asyncio.ensure_future(self._pool.check())
            logger.info("stock reads left to Flask for %g s: %r", LEFT_TO_FLASK_AFTER_A_FAILURE_S, exc)
            return None
