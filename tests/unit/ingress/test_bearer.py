"""The storefront API's Bearer check: no token configured, header missing, wrong token, right token, rotation."""
from __future__ import annotations

import pytest

from erp_sync.ingress.bearer import bearer_token_matches

TOKEN = b"storefront-token-0123456789"
OLD = b"old-storefront-token-987654"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic c3RvcmU6ZnJvbnQ=",
                                    "Bearer wrong-token-0123456789", f"Token {TOKEN.decode()}"])
def test_a_missing_or_wrong_credential_is_refused(header):
    assert not bearer_token_matches([TOKEN], header)


@pytest.mark.parametrize("header", [f"Bearer {TOKEN.decode()}", f"bearer {TOKEN.decode()}",
                                    f"  Bearer   {TOKEN.decode()}  "])
def test_the_token_is_accepted_whatever_the_scheme_case_and_spacing(header):
    assert bearer_token_matches([TOKEN], header)


def test_during_a_rotation_old_and_new_tokens_are_accepted():
    assert bearer_token_matches([TOKEN, OLD], f"Bearer {OLD.decode()}")
    assert bearer_token_matches([TOKEN, OLD], f"Bearer {TOKEN.decode()}")


def test_with_no_token_configured_nothing_is_accepted():
    assert not bearer_token_matches([], f"Bearer {TOKEN.decode()}")
