from __future__ import annotations

import hashlib
import hmac

import pytest

from erp_sync.ingress.signature import sign, verify_signature

BODY = b'{"event_id": "evt_1"}'
SECRET = b"current-secret-0123456789"
OLD = b"previous-secret-0123456789"


def test_signature_is_lowercase_hex_hmac_sha256_of_the_raw_body():
    assert sign(SECRET, BODY) == hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("secrets", "header", "valid"),
    [
        ((), sign(SECRET, BODY), False),
        ((SECRET,), None, False),
        ((SECRET,), "", False),
        ((SECRET,), sign(OLD, BODY), False),
        ((SECRET,), sign(SECRET, BODY + b" "), False),
        ((SECRET,), sign(SECRET, BODY), True),
        ((SECRET,), "sha256=" + sign(SECRET, BODY), True),
        ((SECRET,), " " + sign(SECRET, BODY).upper() + " ", True),
        ((SECRET, OLD), sign(OLD, BODY), True),
        ((SECRET,), "sha256=", False),
        ((SECRET,), "ünïcode", False),
    ],
    ids=["no-secret-configured", "header-missing", "header-empty", "wrong-secret", "other-body", "right",
         "sha256-prefix", "uppercase-and-spaces", "rotation", "prefix-only", "non-ascii"],
)
def test_verify_signature(secrets, header, valid):
    assert verify_signature(secrets, BODY, header) is valid
