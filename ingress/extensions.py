"""What the app holds for its requests: settings, the publisher, the database engine, the door's tally."""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.webhook_tally import WebhookTallies
from erp_sync.shared.db import DEFAULT_POOL_SIZE, MAX_OVERFLOW, make_engine
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.settings import Settings

_T = TypeVar("_T")
# The most any one statement of a request may take; see init_app.
STATEMENT_TIMEOUT_MS = 30_000


def init_app(app: Flask, config: Settings) -> None:
    app.extensions["erp_sync.settings"] = config
    app.extensions["erp_sync.publisher"] = ConfirmingPublisher(
        config.amqp_url, confirm_timeout_s=config.publish_confirm_timeout_s
    )
    # A server's request threads keep every connection they open, up to the same 15 as before: an
    # overflow connection closed when given back cost a new PostgreSQL backend (about 3 ms of its
    # CPU and half a millisecond of ours) every few requests exactly when many were under way.
    # lock_timeout: a read kept waiting by a migration's exclusive lock is answered 503 with
    # Retry-After; waiting without bound, reads held every request thread, and endpoints that touch
    # no locked table stalled with them.
    # statement_timeout: a read whose plan goes wrong on a grown table is ended, not left to hold its
    # thread and connection for as long as it runs; the slowest read (the console's overview, /metrics)
    # takes a fraction of a second at a million SKUs.
    app.extensions["erp_sync.engine"] = engine = make_engine(
        config.database_url, pool_size=DEFAULT_POOL_SIZE + MAX_OVERFLOW, max_overflow=0,
        lock_timeout_ms=config.database_lock_timeout_ms, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
    # Reads of committed rows need no transaction: at READ COMMITTED each statement sees its own
    # snapshot either way, and without one psycopg sends no BEGIN before a read nor ROLLBACK after
    # it, one round trip instead of three for a storefront's GET. Same pool, same connections.
    app.extensions["erp_sync.read_engine"] = engine.execution_options(isolation_level="AUTOCOMMIT")


def close(app: Flask) -> None:
    """Close what init_app opened, once the app's worker stops serving."""
    if "erp_sync.webhook_tallies" in app.extensions:
        app.extensions["erp_sync.webhook_tallies"].close()
    if "erp_sync.publisher" in app.extensions:
        app.extensions["erp_sync.publisher"].close()
        app.extensions["erp_sync.engine"].dispose()


def engine_of(app: Flask) -> Engine:
    return app.extensions["erp_sync.engine"]  # type: ignore[no-any-return]


def settings() -> Settings:
    return current_app.extensions["erp_sync.settings"]  # type: ignore[no-any-return]


def publisher() -> ConfirmingPublisher:
    return current_app.extensions["erp_sync.publisher"]  # type: ignore[no-any-return]


def engine() -> Engine:
    return current_app.extensions["erp_sync.engine"]  # type: ignore[no-any-return]


def read_engine() -> Engine:
    """The engine for reads only: each statement on its own, outside any transaction."""
    return current_app.extensions["erp_sync.read_engine"]  # type: ignore[no-any-return]


def look_up(find: Callable[[Session, str], _T | None], key: str, what: str) -> _T:
    """`find(session, key)` in a read-only session of its own; a 404 naming the unknown `what` when it finds nothing."""
    with Session(read_engine()) as session:
        found = find(session, key)
    if found is None:
        raise ApiError(404, f"unknown {what} {key!r}")
    return found


def webhook_tallies() -> WebhookTallies:
    return current_app.extensions["erp_sync.webhook_tallies"]  # type: ignore[no-any-return]
