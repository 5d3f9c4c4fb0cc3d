"""The idempotency record: an event's effect happens once, in the transaction that records it."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# DO NOTHING rather than catching IntegrityError: a concurrent duplicate waits for the first
# one's commit and then reads as a duplicate instead of failing (and being parked). Plain SQL
# because SQLAlchemy 2.0 compiles a PostgreSQL ON CONFLICT anew every time (sqlalchemy#10445).
_RECORD = text("""
INSERT INTO processed_events (event_id, event_type) VALUES (:event_id, :event_type)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
""")


def record_event(session: Session, event_id: str, event_type: str) -> bool:
    """Record the event as processed; False when it already was (a redelivery or a replay)."""
    return session.execute(_RECORD, {"event_id": event_id, "event_type": event_type}).first() is not None
