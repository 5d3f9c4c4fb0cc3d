"""The rule that tells a redelivery from a reused event id, and the digest it compares."""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from erp_sync.workers.idempotency import Arrival, Recorded, body_digest, is_same_event

BODY = b'{"event_id": "evt_1", "event_type": "inventory.change"}'
OTHER = b'{"event_id": "evt_1", "event_type": "inventory.change", "x": 1}'
DATED = datetime(2026, 12, 7, tzinfo=UTC)


def test_the_digest_is_the_sha256_of_the_exact_bytes():
    assert body_digest(BODY) == hashlib.sha256(BODY).digest()
    # a byte of whitespace is another body: the ERP's retry re-sends the bytes it signed
    assert body_digest(BODY + b" ") != body_digest(BODY)


@pytest.mark.parametrize(("recorded", "arrival", "same"), [
    (Recorded("inventory.change", body_digest(BODY)), Arrival("evt_1", "inventory.change", DATED, body_digest(BODY)), True),
    (Recorded("inventory.change", body_digest(BODY)), Arrival("evt_1", "inventory.change", DATED, body_digest(OTHER)), False),
    (Recorded("inventory.change", body_digest(BODY)), Arrival("evt_1", "catalog.update", DATED, body_digest(BODY)), False),
    # a record of a release before the digest, or a caller without a body: the type alone decides
    (Recorded("inventory.change", None), Arrival("evt_1", "inventory.change", DATED, body_digest(OTHER)), True),
    (Recorded("inventory.change", None), Arrival("evt_1", "catalog.update", DATED, body_digest(BODY)), False),
    (Recorded("inventory.change", body_digest(BODY)), Arrival("evt_1", "inventory.change", DATED, None), True),
    (Recorded("catalog.update", body_digest(BODY)), Arrival("evt_1", "inventory.change", DATED, None), False),
])
def test_a_redelivery_has_the_same_type_and_body_as_the_record(recorded, arrival, same):
    assert is_same_event(recorded, arrival) is same
