"""The storefront API's credential: `Authorization: Bearer <token>`, checked in constant time."""
from __future__ import annotations

import hmac
from collections.abc import Iterable

SCHEME = "bearer"


def bearer_token_matches(tokens: Iterable[bytes], header: str | None) -> bool:
    """True when `header` carries any of `tokens` (several during a rotation)."""
    if not header:
        return False
    scheme, _, provided = header.strip().partition(" ")
    if scheme.lower() != SCHEME or not provided.strip():
        return False
    provided_bytes = provided.strip().encode("utf-8", "replace")
    # Check every token, matched or not, so the time taken says nothing about which one matched.
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(token, provided_bytes)
    return matched
