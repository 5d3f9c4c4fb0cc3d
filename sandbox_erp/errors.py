"""The one API error of the sandbox: a status, a reason and details, rendered as JSON."""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success, with the reason the client needs to fix its call."""

    def __init__(self, status: int, reason: str, details: list[Any] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        body: dict[str, Any] = {"error": self.reason}
        if self.details:
            body["details"] = self.details
        return body
