"""The idempotency record: an event's effect happens once, in the transaction that records it."""
from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from shared.models import ProcessedEvent


def record_event(session: Session, event_id: str, event_type: str) -> bool:
    """Record the event as processed; False when it already was (a redelivery or a replay)."""
    # DO NOTHING rather than catching IntegrityError: a concurrent duplicate waits for the
    # first one's commit and then reads as a duplicate instead of failing (and being parked).
    statement = (
        pg_insert(ProcessedEvent)
        .values(event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing(index_elements=[ProcessedEvent.event_id])
        .returning(ProcessedEvent.event_id)
    )
    return session.execute(statement).first() is not None
