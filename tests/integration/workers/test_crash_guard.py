"""A message that kills its worker is parked alone, and the messages prefetched beside it are applied."""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from erp_sync.shared.consumer import SUSPECT_RETURNS
from erp_sync.shared.dead_letters import parked_from
from erp_sync.shared.models.events import ProcessedEvent
from erp_sync.shared.models.operations import UnfinishedAttempt
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import CRASH_DELIVERY_LIMIT, EVENTS_EXCHANGE
from erp_sync.workers.crash_guard import FORGOTTEN_AFTER, UNFINISHED_LIMIT, UnfinishedAttempts
from tests.support.amqp import drain
from tests.support.dying_consumer import EVENT_TYPE, KILLED, PREFETCH, QUEUE

MESSAGES = 2 * PREFETCH
# Restarts allowed before the test gives up: well short of the broker's own limit, which parks
# every message the worker had prefetched along with the one at fault.
MOST_DEATHS = 8
assert SUSPECT_RETURNS + UNFINISHED_LIMIT < MOST_DEATHS < CRASH_DELIVERY_LIMIT


@pytest.fixture
def recorded(db_engine: Engine) -> Iterator[Engine]:
    yield db_engine
    with Session(db_engine) as session, session.begin():
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_type == EVENT_TYPE))
        session.execute(delete(UnfinishedAttempt).where(UnfinishedAttempt.queue == QUEUE.name))


def publish(amqp_url: str, event_ids: list[str]) -> None:
    publisher = ConfirmingPublisher(amqp_url)
    try:
        for event_id in event_ids:
            publisher.publish(OutgoingMessage(EVENTS_EXCHANGE, QUEUE.routing_key, b'{"sku": "SKU-1"}', event_id))
    finally:
        publisher.close()


def applied(engine: Engine, event_ids: list[str]) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(event_ids))))


def run_until_applied(amqp_url: str, database_url: str, engine: Engine, fatal_id: str, neighbours: list[str],
                      concurrency: int) -> int:
    """Start the consumer again each time it dies, as Kubernetes would, until every neighbour is
    applied: how many times it died."""
    deaths = 0
    while deaths < MOST_DEATHS:
        process = subprocess.Popen([sys.executable, "-m", "tests.support.dying_consumer", amqp_url, database_url,
                                    fatal_id, str(concurrency)])
        try:
            deadline = time.monotonic() + 60
            while process.poll() is None and applied(engine, neighbours) != set(neighbours):
                assert time.monotonic() < deadline, "the consumer neither died nor applied its messages in 60 s"
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.terminate()
            status = process.wait(timeout=30)
        if status != KILLED:
            return deaths
        deaths += 1
    pytest.fail(f"died {deaths} times and applied {len(applied(engine, neighbours))} of {len(neighbours)}")


@pytest.mark.parametrize("concurrency", [1, 4], ids=["one batch at a time", "four batches at once"])
def test_a_message_that_kills_its_worker_is_parked_alone_and_its_neighbours_are_applied(
        broker, migrated_database_url, recorded, concurrency):
    event_ids = [f"evt-{uuid.uuid4().hex}" for _ in range(MESSAGES)]
    fatal_id, neighbours = event_ids[2], event_ids[:2] + event_ids[3:]
    publish(broker, event_ids)

    deaths = run_until_applied(broker, migrated_database_url, recorded, fatal_id, neighbours, concurrency)

    # Twice with its neighbours (a connection lost takes them all back once), then alone each time.
    assert deaths == SUSPECT_RETURNS + UNFINISHED_LIMIT
    parked = [parked_from(QUEUE.worker, landed.properties, landed.body) for landed in drain(broker, QUEUE.parking_queue)]
    assert [message.message_id for message in parked] == [fatal_id]
    assert f"its worker stopped {UNFINISHED_LIMIT} times while handling it alone" in parked[0].reason
    assert fatal_id not in applied(recorded, event_ids)
    assert drain(broker, QUEUE.name) == []
    with Session(recorded) as session:  # each neighbour's count is forgotten once it has ended
        counts = session.execute(select(UnfinishedAttempt.message_key, UnfinishedAttempt.attempts)
                                 .where(UnfinishedAttempt.queue == QUEUE.name)).all()
    assert [attempts for _, attempts in counts] == [UNFINISHED_LIMIT + 1]  # the parked one's, kept


def test_a_count_left_a_day_ago_is_forgotten_and_the_message_counted_afresh(recorded):
    attempts = UnfinishedAttempts(recorded)
    with Session(recorded) as session, session.begin():
        session.add_all([
            UnfinishedAttempt(queue=QUEUE.name, message_key="stale", attempts=UNFINISHED_LIMIT + 1,
                              started_at=datetime.now(UTC) - FORGOTTEN_AFTER - timedelta(minutes=1)),
            UnfinishedAttempt(queue=QUEUE.name, message_key="recent", attempts=2,
                              started_at=datetime.now(UTC) - FORGOTTEN_AFTER + timedelta(minutes=5))])

    assert attempts.started(QUEUE.name, "stale") == 1
    assert attempts.started(QUEUE.name, "recent") == 3
    attempts.ended(QUEUE.name, "stale")
    assert attempts.started(QUEUE.name, "stale") == 1
