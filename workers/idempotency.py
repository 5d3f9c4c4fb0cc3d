"""The idempotency record: an event's effect happens once, in the transaction that records it.

An event id names one event. The record keeps the SHA-256 of the body the ERP signed (the
ingress publishes those bytes unchanged, and a retry or a replay from the parking queue carries
them unchanged), so a redelivery, same id and same body, is a harmless duplicate, while the
same id with another body or event type is a conflict: parked, never dropped as a duplicate. It
also keeps the event's ERP timestamp, by which it is pruned (workers/idempotency_window.py); the
first arrival's, should a batch hold copies of one id.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.errors import EventIdConflict
from erp_sync.workers.idempotency_window import Dated
from erp_sync.workers.metrics import EVENT_ID_CONFLICTS

logger = logging.getLogger(__name__)

# DO NOTHING rather than catching IntegrityError: a concurrent duplicate waits for the first
# one's commit and then reads as a duplicate instead of failing (and being parked). Plain SQL
# over arrays: one statement text for any number of events, and SQLAlchemy 2.0 compiles a
# PostgreSQL ON CONFLICT anew every time (sqlalchemy#10445).
RECORD_FRESH = """
INSERT INTO processed_events (event_id, event_type, body_digest, dated)
SELECT event_id, :event_type, body_digest, dated
FROM unnest(CAST(:event_ids AS varchar[]), CAST(:digests AS bytea[]), CAST(:dated AS timestamptz[]))
     AS arrived (event_id, body_digest, dated)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
_RECORD = text(RECORD_FRESH)
# A separate statement: it sees a row a concurrent transaction committed while _RECORD waited for it.
_RECORDED = text("""
SELECT event_id, event_type, body_digest FROM processed_events WHERE event_id = ANY(CAST(:event_ids AS varchar[]))
""")


def body_digest(raw: bytes) -> bytes:
    """The digest the record keeps of a body, as the ERP signed it."""
    return hashlib.sha256(raw).digest()


@dataclass(frozen=True, slots=True)
class Arrival:
    """An event as it arrived: its id, type and ERP timestamp, and its body's digest (None: unknown, taken as the same)."""

    event_id: str
    event_type: str
    dated: datetime
    digest: bytes | None = None

    @classmethod
    def of(cls, event: Dated, digest: bytes | None) -> Arrival:
        return cls(event.event_id, event.event_type, event.timestamp, digest)


def arrivals_of(events: Sequence[Dated], digests: Sequence[bytes | None] | None) -> list[Arrival]:
    """The arrivals of a batch of events, with their bodies' digests in the same order (None: unknown)."""
    given = digests if digests is not None else [None] * len(events)
    return [Arrival.of(event, digest) for event, digest in zip(events, given, strict=True)]


@dataclass(frozen=True, slots=True)
class Recorded:
    """How an id was recorded first: the type and digest a later arrival of the id must match."""

    event_type: str
    digest: bytes | None


def is_same_event(recorded: Recorded, arrival: Arrival) -> bool:
    """Whether `arrival` is a redelivery of the event recorded under its id.

    The type must match; a digest missing on either side (a row of a release before 0007, or a
    caller that holds no body) cannot tell, and is taken as the same body, as before.
    """
    if recorded.event_type != arrival.event_type:
        return False
    return recorded.digest is None or arrival.digest is None or recorded.digest == arrival.digest


@dataclass(frozen=True, slots=True)
class Recording:
    """The statement that records fresh ids: `RECORD_FRESH`, or one that does more in the same round trip.

    It takes `RECORD_FRESH`'s parameters and `params`, and returns the ids it inserted.
    """

    statement: TextClause = _RECORD
    params: Mapping[str, Any] | None = None


def record_events(session: Session, arrivals: Sequence[Arrival], recording: Recording = Recording()) -> list[bool]:
    """Record the events as processed; for each, in order, whether it is the first of its id.

    False is a duplicate: a redelivery, a replay, or a later copy in `arrivals`. Events of one
    type only (a worker's queue).

    Raises:
        EventIdConflict: for the first arrival whose id was recorded, before or earlier in
            `arrivals`, with another body or type. Nothing is reported: a batch is run again
            message by message, and `record_event` reports the conflict there.
    """
    if not arrivals:
        return []
    first: dict[str, Arrival] = {}
    for arrival in arrivals:
        first.setdefault(arrival.event_id, arrival)
    # Sorted: two transactions recording overlapping ids wait for each other rather than deadlock.
    ids = sorted(first)
    fresh = set(session.scalars(recording.statement, {
        "event_ids": ids,
        "digests": [first[event_id].digest for event_id in ids],
        "dated": [first[event_id].dated for event_id in ids],
        "event_type": arrivals[0].event_type,
        **(recording.params or {}),
    }))
    recorded = {event_id: Recorded(arrival.event_type, arrival.digest)
                for event_id, arrival in first.items() if event_id in fresh}
    if seen_before := [event_id for event_id in ids if event_id not in fresh]:
        for event_id, event_type, digest in session.execute(_RECORDED, {"event_ids": seen_before}).all():
            recorded[event_id] = Recorded(event_type, digest)

    verdicts: list[bool] = []
    for arrival in arrivals:
        # A row pruned between the two statements leaves nothing to compare: a duplicate, as before 0007.
        held = recorded.get(arrival.event_id, Recorded(arrival.event_type, None))
        if not is_same_event(held, arrival):
            raise EventIdConflict(
                f"event id {arrival.event_id} was applied before with a different body "
                f"({held.event_type}); this {arrival.event_type} event is not applied",
                event_id=arrival.event_id, event_type=arrival.event_type)
        verdicts.append(arrival.event_id in fresh)
        fresh.discard(arrival.event_id)  # a later copy in `arrivals` is a duplicate
    return verdicts


def record_event(session: Session, arrival: Arrival, recording: Recording = Recording()) -> bool:
    """Record one event as processed; False when it already was (a redelivery or a replay).

    Raises:
        EventIdConflict: its id was recorded with another body or type; alerted and counted here,
            the one place a conflict is final (a batch that met one is run again message by message).
    """
    try:
        [first] = record_events(session, [arrival], recording)
    except EventIdConflict as conflict:
        alert(Cause.EVENT_ID_CONFLICT, "event id %s reused by the ERP for a different %s event; parking it, "
              "not applied", conflict.event_id, conflict.event_type)
        EVENT_ID_CONFLICTS.labels(event_type=conflict.event_type).inc()
        raise
    return first
