"""The idempotency window: which events a worker still applies, and which records can go.

A worker applies an ERP event only while its timestamp is within IDEMPOTENCY_WINDOW_S of now; an
older one is parked (`EventTooOld`), never applied. Each record keeps its event's timestamp
(`dated`), so a record is pruned once that is before the window, and a day more for the hosts'
clocks: no worker applies a copy of its event any more, so a redelivery or a replay is still told
from a first arrival, while processed_events stops growing. Records without a date (written before
migration 0020, or by an earlier release's workers during a rolling update) were written no earlier
than their event's timestamp less WEBHOOK_MAX_FUTURE_SKEW_S (the door refuses events dated further
ahead): they go once older than the window, that skew (as set now: lowered since, such a record may
go early) and a day.

psycopg alone: the reconcile worker prunes, and SQLAlchemy's import would take it past its memory target.
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
from erp_sync.shared.settings import LARGEST_SPAN_S, Settings

logger = logging.getLogger(__name__)

# How far the clocks of the hosts that apply events and of the one that prunes may disagree.
CLOCK_SLACK = timedelta(days=1)
PRUNE_BATCH_ROWS = 10_000
# Oldest first through a partial index; a batch a transaction, so no lock is held long. By ctid,
# the rows the subquery locked, not again through the primary key: half the time (bench.prune).
_PRUNE_DATED = """
DELETE FROM processed_events WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM processed_events WHERE dated < %(cutoff)s
     ORDER BY dated LIMIT %(rows)s FOR UPDATE SKIP LOCKED))"""
_PRUNE_UNDATED = """
DELETE FROM processed_events WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM processed_events WHERE dated IS NULL AND processed_at < %(cutoff)s
     ORDER BY processed_at LIMIT %(rows)s FOR UPDATE SKIP LOCKED))"""


class Dated(Protocol):
    """An ERP event as the idempotency record knows it."""

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
        skew_s = min(settings.webhook_max_future_skew_s, LARGEST_SPAN_S)
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

    def dated_cutoff(self, now: datetime) -> datetime | None:
        """Records of events dated before this can go; None: none can yet."""
        return _before(now, self.window, CLOCK_SLACK)

    def undated_cutoff(self, now: datetime) -> datetime | None:
        """Records without a date (before migration 0020) written before this can go; None: none can yet."""
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
    window = IdempotencyWindow.of(settings)
    at = now or datetime.now(UTC)
    pruned = 0
    try:
        with connect(settings.database_url, autocommit=True) as conn:
            for statement, cutoff in ((_PRUNE_DATED, window.dated_cutoff(at)),
                                      (_PRUNE_UNDATED, window.undated_cutoff(at))):
                while cutoff is not None and (stop is None or not stop.is_set()):
                    deleted = conn.execute(statement, {"cutoff": cutoff, "rows": batch_rows}).rowcount
                    pruned += deleted
                    if deleted < batch_rows:
                        break
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc
    logger.info("pruned %d idempotency records past IDEMPOTENCY_WINDOW_S", pruned)
    return pruned
