"""The idempotency record: an event's effect happens once, in the transaction that records it."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# DO NOTHING rather than catching IntegrityError: a concurrent duplicate waits for the first
# one's commit and then reads as a duplicate instead of failing (and being parked). Plain SQL
# over an array: one statement text for any number of events, and SQLAlchemy 2.0 compiles a
# PostgreSQL ON CONFLICT anew every time (sqlalchemy#10445).
_RECORD = text("""
INSERT INTO processed_events (event_id, event_type)
SELECT unnest(CAST(:event_ids AS varchar[])), :event_type
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
""")


def record_events(session: Session, event_ids: Iterable[str], event_type: str) -> set[str]:
    """Record the events as processed; the ids not recorded before (the rest are redeliveries or replays)."""
    # Sorted: two transactions recording overlapping ids wait for each other rather than deadlock.
    return set(session.scalars(_RECORD, {"event_ids": sorted(set(event_ids)), "event_type": event_type}))


def record_event(session: Session, event_id: str, event_type: str) -> bool:
    """Record the event as processed; False when it already was (a redelivery or a replay)."""
    return bool(record_events(session, [event_id], event_type))
