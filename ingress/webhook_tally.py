"""The door's tally of webhooks answered, per minute, for the operator console.

A request only adds one to a counter in memory; a thread writes the counts to `webhook_tallies`
every few seconds with one upsert, so the door's cost stays a dictionary update and several
server processes add up in the table. Rows older than a day are dropped as the thread goes.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from erp_sync.shared.models import WebhookTally

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 5.0
KEPT_FOR = timedelta(days=1)
ACCEPTED, REJECTED = "accepted", "rejected"


class WebhookTallies:
    """Counts in memory, written to PostgreSQL by a thread of its own."""

    def __init__(self, engine: Engine, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self._engine = engine
        self._interval_s = flush_interval_s
        self._counts: Counter[tuple[int, str, str]] = Counter()  # (minutes since the epoch, outcome, reason)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, outcome: str, reason: str) -> None:
        minute = int(time.time()) // 60  # a datetime costs ten times as much: the door is benchmarked
        with self._lock:
            self._counts[(minute, outcome, reason)] += 1
            if self._thread is None:
                # Started by the first request, in the server's process: a thread does not survive a fork.
                self._thread = threading.Thread(target=self._run, name="webhook-tally", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        rows = [{"minute": datetime.fromtimestamp(m * 60, UTC), "outcome": o, "reason": r, "count": n}
                for (m, o, r), n in counts.items()]
        statement = insert(WebhookTally).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["minute", "outcome", "reason"], set_={"count": WebhookTally.count + statement.excluded.count})
        try:
            with self._engine.begin() as connection:
                connection.execute(statement)
                connection.execute(delete(WebhookTally).where(WebhookTally.minute < datetime.now(UTC) - KEPT_FOR))
        except SQLAlchemyError as exc:
            # Only the console's figures suffer; the counts are kept for the next try.
            logger.warning("webhook tally not written (%s); trying again", exc)
            with self._lock:
                self._counts.update(counts)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()


def last_hour(engine: Engine, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Webhooks answered in the last hour: {"accepted": {event_type: n}, "rejected": {reason: n}}."""
    since = (now or datetime.now(UTC)) - timedelta(hours=1)
    query = (select(WebhookTally.outcome, WebhookTally.reason, func.sum(WebhookTally.count))
             .where(WebhookTally.minute >= since).group_by(WebhookTally.outcome, WebhookTally.reason)
             .order_by(WebhookTally.outcome, WebhookTally.reason))
    figures: dict[str, dict[str, int]] = {ACCEPTED: {}, REJECTED: {}}
    with engine.connect() as connection:
        for outcome, reason, total in connection.execute(query):
            figures.setdefault(outcome, {})[reason] = int(total)
    return figures
