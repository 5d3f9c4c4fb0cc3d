"""What the operator console shows, read at each request from the broker and the database."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from erp_sync.ingress.webhook_tally import last_hour
from erp_sync.shared.broker import queue_occupancy
from erp_sync.shared.db import translate_db_error
from erp_sync.shared.dead_letters import DeadLetters, ParkedMessage, work_queues
from erp_sync.shared.errors import ConfigurationError, ErpSyncError, ParkedBeingRead
from erp_sync.shared.held_runs import overtakes
from erp_sync.shared.models import OrderStatus, ReconciliationRun
from erp_sync.shared.order_view import orders_by_status
from erp_sync.shared.row_counts import ORDERS, row_counts

logger = logging.getLogger(__name__)

RUNS = ReconciliationRun.__table__
WAITING = (OrderStatus.PENDING_SYNC.value, OrderStatus.LOCAL_ONLY.value, OrderStatus.RECEIVED.value)
RUNS_SHOWN = 30
PARKED_SHOWN = 100


@dataclass(frozen=True)
class QueueRow:
    worker: str
    ready: int
    consumers: int
    parked: int


@dataclass
class Overview:
    """Everything on the console's page; a source that cannot be read leaves its part empty, with a note."""

    queues: list[QueueRow] = field(default_factory=list)
    broker_read: bool = True  # False: the queues are unknown, not none
    parked_being_read: bool = False  # True: a reader holds the parked messages, their counts miss them
    database_read: bool = True  # False: the orders, webhooks and sweeps are unknown, not none
    orders_by_status: dict[str, int] = field(default_factory=dict)
    oldest_waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    webhooks: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    read_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def overview(engine: Engine, amqp_url: str) -> Overview:
    page = Overview()
    try:
        # Passive declares: the parked counts without a look at a parked message.
        occupancy = queue_occupancy(amqp_url)
        page.queues = [QueueRow(worker, *figures) for worker, figures in occupancy.queues.items()]
        page.parked_being_read = occupancy.parked_being_read
    except ErpSyncError as exc:
        logger.warning("console: cannot read the queues: %s", exc)
        page.broker_read = False
        page.problems.append("RabbitMQ cannot be read: queues and parked counts are not shown")
    try:
        _read_database(engine, page)
    except SQLAlchemyError as exc:
        # The queues and parked counts above still tell the on-call person something.
        logger.warning("console: cannot read the database: %s", translate_db_error(exc))
        page.database_read = False
        page.problems.append("PostgreSQL cannot be read: orders, webhooks and sweeps are not shown")
    return page


@dataclass
class ParkedPage:
    """The parked page: the first PARKED_SHOWN messages (of one queue, or all), how many each queue holds,
    or why they cannot be shown."""

    queue: str | None = None
    messages: list[ParkedMessage] = field(default_factory=list)
    parked_by_queue: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    shown_at_most: int = PARKED_SHOWN

    @property
    def parked(self) -> int:
        return sum(self.parked_by_queue.values())

    @property
    def cut(self) -> bool:
        """Whether more are parked (on the queue shown) than the page lists."""
        parked = self.parked if self.queue is None else self.parked_by_queue.get(self.queue, 0)
        return parked > len(self.messages) == self.shown_at_most


def parked_page(amqp_url: str, worker: str | None = None) -> ParkedPage:
    """`worker`'s parked messages (all when None), as `work_queues` names it.

    Every parked message read is taken and handed back, which RabbitMQ counts as a delivery: read
    only when the operator asks, never by the page that reloads itself.

    Raises:
        ConfigurationError: `worker` names no queue.
    """
    page = ParkedPage(queue=None if worker is None else work_queues(worker)[0].worker, shown_at_most=PARKED_SHOWN)
    try:
        page.messages, page.parked_by_queue = DeadLetters(amqp_url).counted(page.queue, limit=page.shown_at_most)
    except (ParkedBeingRead, ConfigurationError) as exc:
        page.problem = str(exc)
    except ErpSyncError as exc:
        logger.warning("console: cannot read the parked messages: %s", exc)
        page.problem = "RabbitMQ cannot be read"
    return page


def _read_database(engine: Engine, page: Overview) -> None:
    with Session(engine) as session:
        for status in WAITING:
            for oldest in list(orders_by_status(session, status, 1)):  # read to its end: its cursor closes
                since = datetime.fromisoformat(oldest["created_at"])
                page.oldest_waiting[status] = oldest | {"waiting": age_text(page.read_at - since)}
        page.runs = _with_overtaking([dict(row) for row in session.execute(
            select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(RUNS_SHOWN)).mappings()])
        page.orders_by_status = row_counts(session.connection(), ORDERS)  # last: it folds (shared/row_counts.py)
        session.commit()
    page.webhooks = last_hour(engine)


def _with_overtaking(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run, a held one with the first later run that overtakes it (`overtaken_by`, or None).

    The runs shown are the newest: any run later than one of them is shown too.
    """
    for run in runs:
        later = [other["id"] for other in runs if overtakes(run["id"], other["id"], other["status"])]
        run["overtaken_by"] = min(later, default=None) if run["status"] == "held" else None
    return runs


def age_text(age: timedelta) -> str:
    """An age as an operator reads it: 42 s, 17 min, 5.2 h, 3.1 d."""
    seconds = max(age.total_seconds(), 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
