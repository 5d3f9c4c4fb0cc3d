"""pika's decoding of message headers, made to survive values that `datetime` or `int()` cannot hold.

pika 1.4.4 decodes a header of type timestamp with `datetime.fromtimestamp` and a double with
`int()`. A timestamp in milliseconds (the year 58,000), NaN or infinity raised inside its frame
decoder, which reported it as a lost connection: the consumer reconnected, the broker delivered
the message again, and its queue stalled behind it for good. Anyone who can publish sets headers
(a storefront's client library, an operator's tool), so such a value decodes to its raw number
instead. Timestamps are fixed upstream (pika/pika#1699, merged after 1.4.4, not released yet): drop
the timestamp case once a release has it. Imported for this effect by the modules that read what
others published (shared.consumer, shared.dead_letters).
"""
from __future__ import annotations

import struct
from typing import Any

import pika.data

_RAW = {b"T": ">Q", b"d": ">d", b"f": ">f"}  # timestamp, double, float: what a fallback reads
_strict_decode_value = pika.data.decode_value


def decode_value(encoded: bytes, offset: int) -> tuple[Any, int]:
    """pika's `decode_value`, with a timestamp, double or float it cannot convert kept as the raw number."""
    try:
        value, end = _strict_decode_value(encoded, offset)
        return value, end
    except (ValueError, OverflowError, OSError):
        layout = _RAW.get(encoded[offset:offset + 1])
        if layout is None:
            raise
        return struct.unpack_from(layout, encoded, offset + 1)[0], offset + 1 + struct.calcsize(layout)


# decode_table and the arrays within it look decode_value up in pika.data at each call.
pika.data.decode_value = decode_value
