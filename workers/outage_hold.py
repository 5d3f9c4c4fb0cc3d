"""A database out of reach holds a worker's batch until it answers, rather than send it round the retry path.

The retry path's delays grow (RETRY_DELAYS_MS: 1 s, 5 s, 30 s, 120 s, 600 s): after a minute's
failover, a message could wait two more minutes in a delay queue with the database long back, and
an order recorded that late held no stock meanwhile, so the shop could sell it again. Held, the
batch is applied within a probe interval of the database's return. A hold lasts at most `hold_s`
(below RabbitMQ's consumer timeout, which would take the unacked messages back) or until the worker
stops; then the messages go round the retry path as before.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Engine

from erp_sync.shared.consumer import Delivery, Outcome, Runner
from erp_sync.shared.db import check_database
from erp_sync.shared.errors import DatabaseUnavailable
from erp_sync.shared.retry_policy import Retry

logger = logging.getLogger(__name__)

HOLD_S = 300.0
PROBE_INTERVAL_S = 0.5


class OutageHold:
    """A Runner that runs a batch again, once the database answers, where it failed for want of one."""

    def __init__(self, runner: Runner, check_database: Callable[[], None], stop: threading.Event,
                 hold_s: float = HOLD_S, probe_interval_s: float = PROBE_INTERVAL_S) -> None:
        self._runner = runner
        self._check_database = check_database  # raises DatabaseUnavailable when it does not answer
        self._stop = stop
        self._hold_s = hold_s
        self._probe_interval_s = probe_interval_s

    @classmethod
    def on(cls, runner: Runner, engine: Engine, stop: threading.Event) -> OutageHold:
        """`runner` held through an outage of `engine`'s database until `stop`."""
        return cls(runner, lambda: check_database(engine), stop)

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        outcomes = self._runner.run(batch)
        deadline: float | None = None  # one hold for the batch, however often the database comes and goes
        # A retry for another cause (a deadlock, a lock timeout) finds the database answering: the retry path.
        while (retried := [index for index, outcome in enumerate(outcomes) if isinstance(outcome, Retry)]) \
                and not self._answers():
            deadline = deadline or time.monotonic() + self._hold_s
            if not self._waited_for_database(deadline, len(retried)):
                break
            logger.info("the database answers again: applying the %d held messages", len(retried))
            # Run before, perhaps committed unseen: `redelivered`, as the broker would mark them.
            again = [replace(batch[index], redelivered=True) for index in retried]
            for index, outcome in zip(retried, self._runner.run(again), strict=True):
                outcomes[index] = outcome
        return outcomes

    def _answers(self) -> bool:
        try:
            self._check_database()
        except DatabaseUnavailable:
            return False
        return True

    def _waited_for_database(self, deadline: float, count: int) -> bool:
        """Whether the database answered before the deadline, the worker going on."""
        logger.warning("the database does not answer: holding %d messages until it does (at most %.0f s)",
                       count, self._hold_s)
        while time.monotonic() < deadline:
            if self._stop.wait(self._probe_interval_s):
                return False
            if self._answers():
                return True
        logger.warning("the database still does not answer after %.0f s: %d messages go round the retry path",
                       self._hold_s, count)
        return False
