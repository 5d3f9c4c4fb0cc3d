"""Header values that pika decodes into `datetime` or `int` and that those cannot hold: kept as raw numbers."""
from __future__ import annotations

import math
import struct

import pika.data
import pytest

from erp_sync.shared import amqp_headers  # noqa: F401 (the decoding under test)


def table(kind: bytes, payload: bytes) -> bytes:
    entry = bytes([len(b"h")]) + b"h" + kind + payload
    return struct.pack(">I", len(entry)) + entry


@pytest.mark.parametrize("kind, payload, expected", [
    (b"T", struct.pack(">Q", 1_772_000_000_000), 1_772_000_000_000),  # milliseconds: the year 58,122
    (b"T", struct.pack(">Q", 2**64 - 1), 2**64 - 1),  # a negative time, as the Java client writes it
    (b"d", struct.pack(">d", math.inf), math.inf),
], ids=["timestamp in milliseconds", "timestamp before 1970", "an infinite double"])
def test_a_header_decodes_whatever_number_it_holds(kind, payload, expected):
    headers, _ = pika.data.decode_table(table(kind, payload) + b"rest", 0)

    assert headers["h"] == expected


def test_a_nan_double_decodes_to_nan():
    headers, _ = pika.data.decode_table(table(b"d", struct.pack(">d", math.nan)), 0)

    assert math.isnan(headers["h"])
