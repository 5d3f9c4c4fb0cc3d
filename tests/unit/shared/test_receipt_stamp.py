"""The door's receipt stamp: written as microseconds, read back, and anything else read as no stamp."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from erp_sync.shared.receipt_stamp import RECEIVED_AT_HEADER, receipt_headers, received_at

STAMP = datetime(2026, 12, 8, 10, 0, 0, 123456, tzinfo=UTC)
STAMP_US = 1_796_724_000_123_456


def test_a_stamp_written_is_read_back_to_the_microsecond():
    assert received_at(receipt_headers(STAMP_US)) == STAMP


def test_a_stamp_of_now_is_now():
    before = datetime.now(UTC)
    stamp = received_at(receipt_headers())
    assert stamp is not None and before <= stamp <= datetime.now(UTC)


@pytest.mark.parametrize("headers", [
    None, {}, {RECEIVED_AT_HEADER: None}, {RECEIVED_AT_HEADER: str(STAMP_US)}, {RECEIVED_AT_HEADER: float(STAMP_US)},
    {RECEIVED_AT_HEADER: True}, {RECEIVED_AT_HEADER: 0}, {RECEIVED_AT_HEADER: -1},
    {RECEIVED_AT_HEADER: 10 ** 18},  # past the year 9999
], ids=["no headers", "none", "null", "text", "float", "bool", "zero", "negative", "too far"])
def test_anything_but_a_stamp_reads_as_none(headers):
    # (a message queued by an earlier release's door, or published by hand: its ties go as before)
    assert received_at(headers) is None
