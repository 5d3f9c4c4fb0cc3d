"""How long an event is recognised as seen: the idempotency window, and the pruning of records past it.

A worker applies an ERP event only while its timestamp is within IDEMPOTENCY_WINDOW_S of now; an
older one is parked (`EventTooOld`), never applied. A record is written when its event is applied,
which is no earlier than the event's timestamp less WEBHOOK_MAX_FUTURE_SKEW_S (the door refuses
events dated further ahead). So a record pruned only once it is older than the window plus that
skew plus a day (for the hosts' clocks) belongs to an event no worker applies any more: a
redelivery or a replay is still told from a first arrival, and processed_events stops growing.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import psycopg

from erp_sync.shared.errors import EventTooOld
from erp_sync.shared.pg import connect, translate_pg_error
from erp_sync.shared.settings import MAX_IDEMPOTENCY_WINDOW_S, Settings

logger = logging.getLogger(__name__)

CLOCK_SLACK = timedelta(days=1)
PRUNE_BATCH_ROWS = 10_000
# Oldest first through ix_processed_events_processed_at; a batch a transaction, so no lock is held long.
# By ctid, the rows the subquery locked, not again through the primary key: half the time (bench.prune).
_PRUNE = """
DELETE FROM processed_events WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM processed_events WHERE processed_at < %(cutoff)s
     ORDER BY processed_at LIMIT %(rows)s FOR UPDATE SKIP LOCKED))"""


class Dated(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def timestamp(self) -> datetime: ...


D = TypeVar("D", bound=Dated)


@dataclass(frozen=True, slots=True)
class IdempotencyWindow:
    """The window within which an event is applied once, whatever copies of it arrive."""

    window: timedelta
    future_skew: timedelta

    @classmethod
    def of(cls, settings: Settings) -> IdempotencyWindow:
        skew_s = min(settings.webhook_max_future_skew_s, MAX_IDEMPOTENCY_WINDOW_S)
        return cls(settings.idempotency_window, timedelta(seconds=skew_s))

    def admit(self, event: D, now: datetime | None = None) -> D:
        """The event, to be applied; EventTooOld when it is dated before the window."""
        opens = _before(now or datetime.now(UTC), self.window)
        if opens is None or event.timestamp >= opens:
            return event
        raise EventTooOld(f"{event.event_type} event {event.event_id} is dated {event.timestamp.isoformat()}, before "
                          f"the idempotency window (IDEMPOTENCY_WINDOW_S, {self.window.total_seconds():.0f} s) "
                          f"opened at {opens.isoformat()}: a copy of it may have been applied and its record "
                          f"pruned, so it is not applied")

    def admit_all(self, events: list[D], now: datetime | None = None) -> list[D]:
        """The events of a batch, to be applied; EventTooOld for the first dated before the window."""
        at = now or datetime.now(UTC)
        return [self.admit(event, at) for event in events]

    def prune_cutoff(self, now: datetime) -> datetime | None:
        """Records written before this belong to events no worker applies any more; None: none yet."""
        return _before(now, self.window, self.future_skew, CLOCK_SLACK)


def _before(moment: datetime, *spans: timedelta) -> datetime | None:
    """The spans' sum before `moment`; None when that is before the calendar begins (a window of any width)."""
    try:
        return moment - sum(spans, timedelta())
    except OverflowError:
        return None


def prune_processed_events(settings: Settings, stop: threading.Event | None = None,
                           now: datetime | None = None, batch_rows: int = PRUNE_BATCH_ROWS) -> int:
    """Delete the idempotency records past the window, a batch a transaction; how many went.

    Stops between batches once `stop` is set: what is left goes at the next run.
    """
    cutoff = IdempotencyWindow.of(settings).prune_cutoff(now or datetime.now(UTC))
    if cutoff is None:
        return 0
    pruned = 0
    try:
        with connect(settings.database_url, autocommit=True) as conn:
            while stop is None or not stop.is_set():
                deleted = conn.execute(_PRUNE, {"cutoff": cutoff, "rows": batch_rows}).rowcount
                pruned += deleted
                if deleted < batch_rows:
                    break
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc
    logger.info("pruned %d idempotency records written before %s", pruned, cutoff.isoformat())
    return pruned
