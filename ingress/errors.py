"""API errors: one exception class, rendered as JSON by one handler."""
from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


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


def _render_http_exception(error: HTTPException) -> tuple[Response, int]:
    status = error.code or 500
    return jsonify({"error": error.description or error.name, "details": []}), status


def init_app(app: Flask) -> None:
    app.register_error_handler(ApiError, _render_api_error)
    app.register_error_handler(HTTPException, _render_http_exception)
