"""The door's receipt stamp on an ERP event: the header the ingress sets, and the workers' reading of it.

The ERP stamps its events in whole seconds, so two figures of one SKU or product group often share
a second. The ERP sends each after the door answered the one before, so the door's receipt order is
the ERP's order, and the stamp carries it to whichever worker applies the event: on a tie of ERP
timestamps the later-received figure wins (workers/stock_rule.py, workers/catalog_writes.py), where
commit order would let a slower worker put the older figure back. Microseconds since the epoch on
the door host's clock, an AMQP long: every door process must keep its host's time (NTP). The header
travels with the message through the retry path and a replay from parking, so it keeps its place.

A message without a readable stamp (queued by an earlier release's door, or published by hand with
some other value) has none, and its ties go to the later arrival as they did before.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

RECEIVED_AT_HEADER = "x-erp-sync-received-at"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What PostgreSQL's timestamptz and Python's datetime both hold; anything else is no stamp.
_LATEST_US = int((datetime(9999, 12, 31, tzinfo=UTC) - _EPOCH) / timedelta(microseconds=1))


def receipt_headers(now_us: int | None = None) -> dict[str, int]:
    """The header stamping an event received now (or at `now_us`, microseconds since the epoch)."""
    return {RECEIVED_AT_HEADER: time.time_ns() // 1_000 if now_us is None else now_us}


def received_at(headers: Mapping[str, Any] | None) -> datetime | None:
    """When the door received the message, from its headers; None without a readable stamp."""
    value = (headers or {}).get(RECEIVED_AT_HEADER)
    # bool is an int to Python, not a stamp.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= _LATEST_US:
        return None
    return _EPOCH + timedelta(microseconds=value)
