"""API errors: one exception class, rendered as JSON by one handler."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException

from erp_sync.shared.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: status, message, the fields at fault, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "details": self.details}


def _render_api_error(error: ApiError) -> tuple[Response, int, dict[str, str]]:
    return jsonify(error.to_dict()), error.status, error.headers


def _render_http_exception(error: HTTPException) -> tuple[Response, int, list[tuple[str, str]]]:
    status = error.code or 500
    # Its own headers but the HTML content type: a 405's Allow (RFC 9110 requires it), a 416's Content-Range.
    headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
    return jsonify({"error": error.description or error.name, "details": []}), status, headers


def _render_database_error(error: SQLAlchemyError | DatabaseUnavailable) -> tuple[Response, int, dict[str, str]]:
    # The storefront must tell "down, try again" from a bug: the database is down, not the request wrong.
    if isinstance(error, PoolTimeoutError):
        # Every pooled connection in use by this process's requests: the API is overloaded (or each
        # request waits out a lock), while PostgreSQL may be idle. Worth telling the person on call apart.
        logger.warning("read API: no database connection free within the pool's wait: %s", error)
        return jsonify({"error": "the API is busy: no database connection is free; retry shortly",
                        "details": []}), 503, {"Retry-After": "1"}
    logger.error("read API: database unavailable: %s", error)
    retry_after = str(current_app.extensions["erp_sync.settings"].unavailable_retry_after_s)
    body = {"error": "the commerce database is unavailable; retry later", "details": []}
    return jsonify(body), 503, {"Retry-After": retry_after}


def _nosniff(response: Response) -> Response:
    # A browser must never take a JSON answer (which may echo ERP text) for HTML or script.
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app: Flask) -> None:
    app.after_request(_nosniff)
    app.register_error_handler(ApiError, _render_api_error)
    app.register_error_handler(SQLAlchemyError, _render_database_error)
    # What a statement run through the driver (shared.db.driver_execute) raises for the same cause.
    app.register_error_handler(DatabaseUnavailable, _render_database_error)
    app.register_error_handler(HTTPException, _render_http_exception)
