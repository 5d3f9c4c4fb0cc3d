"""The webhook signature: lowercase hex HMAC-SHA256 of the exact raw body (spec 2.1)."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The signature the ERP sends for `body`."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secrets: Iterable[bytes], body: bytes, header: str | None) -> bool:
    """True when `header` is the signature of `body` under any of `secrets` (several during a rotation)."""
    if not header:
        return False
    provided = header.strip()
    if provided[: len(PREFIX)].lower() == PREFIX:
        provided = provided[len(PREFIX):]
    provided_bytes = provided.lower().encode("ascii", "replace")
    # Check every secret, matched or not, so the time taken says nothing about which one matched.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(sign(secret, body).encode("ascii"), provided_bytes)
    return matched
