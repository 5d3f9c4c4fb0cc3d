"""Bearer-token checks for the spec endpoints and the admin API."""
from __future__ import annotations

import hmac

from flask import request

from erp_sync.sandbox_erp.errors import ApiError


def require_bearer(token: str) -> None:
    """Refuse with 401 unless the request carries `Authorization: Bearer <token>`."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "missing or wrong bearer token")
