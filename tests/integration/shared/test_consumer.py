"""The consumer loop against real RabbitMQ and PostgreSQL: commit before ack, retry, park, survive."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from datetime import datetime
from typing import Any

import pika
import pika.data
import pytest
from sqlalchemy import Connection, Engine, delete, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.broker import blocking_connection
from erp_sync.shared.consumer import (
    BatchHandler,
    ConcurrentConsumer,
    Consumer,
    ConsumerConfig,
    Delivery,
    Done,
    Handler,
    Outcome,
)
from erp_sync.shared.db import check_database, make_engine, make_session_factory
from erp_sync.shared.errors import BrokerUnavailable, DatabaseUnavailable, MessageDecodeError, PermanentError
from erp_sync.shared.models.events import ProcessedEvent
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, PARK_REASON_HEADER, Park, Retry
from erp_sync.shared.topology import EVENTS_EXCHANGE, WORK_QUEUES
from tests.support.amqp import drain
from tests.support.services import close_all_connections
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

QUEUE = WORK_QUEUES["inventory"]
DELAYS_MS = (200, 400)
EVENT_TYPE = "test"


# --- observing ---------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def committed(engine: Engine, event_id: str) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).where(ProcessedEvent.event_id == event_id)) or 0


def committed_ids(engine: Engine, event_ids: list[str]) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(event_ids))))


def queue_depth(amqp_url: str, queue: str) -> int:
    """Ready messages on `queue`; once the consumer is stopped, unacked ones are ready again."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def all_queues_empty(amqp_url: str) -> bool:
    queues = [QUEUE.name, QUEUE.parking_queue, *(QUEUE.delay_queue(d) for d in DELAYS_MS)]
    return all(queue_depth(amqp_url, queue) == 0 for queue in queues)


class RecordingRunner:
    """The real BatchRunner, noting each batch it is given and what it decides for each message."""

    def __init__(self, runner: BatchRunner) -> None:
        self._runner = runner
        self.batch_sizes: list[int] = []
        self.outcomes: dict[str | None, list[Outcome]] = defaultdict(list)

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        outcomes = self._runner.run(batch)
        self.batch_sizes.append(len(batch))
        for delivery, outcome in zip(batch, outcomes, strict=True):
            self.outcomes[delivery.message_id].append(outcome)
        return outcomes

    def retries_of(self, event_id: str) -> int:
        return sum(isinstance(outcome, Retry) for outcome in list(self.outcomes[event_id]))


@dataclass
class RunningConsumer:
    consumer: Consumer
    runner: RecordingRunner
    stop_event: threading.Event
    thread: threading.Thread

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the consumer did not stop"


# --- handlers: plain functions of (delivery, session); the loop owns the commit ------------


def record_event(delivery: Delivery, session: Session) -> None:
    session.add(ProcessedEvent(event_id=delivery.message_id, event_type=EVENT_TYPE))


def decode(delivery: Delivery) -> object:
    try:
        return json.loads(delivery.body)
    except ValueError as exc:
        raise MessageDecodeError(f"message {delivery.message_id} is not JSON", raw=delivery.body) from exc


def new_id() -> str:
    return f"evt-{uuid.uuid4().hex}"


def failing_for(event_id: str, error: BaseException, times: int | None = None) -> tuple[Handler, list[Delivery]]:
    """A handler that raises `error` for `event_id` (`times` times, or always) and records the rest."""
    seen: list[Delivery] = []

    def handler(delivery: Delivery, session: Session) -> None:
        seen.append(delivery)
        failures = sum(d.message_id == event_id for d in seen)
        if delivery.message_id == event_id and (times is None or failures <= times):
            raise error
        record_event(delivery, session)

    return handler, seen


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def start_consumer(broker: str, db_engine: Engine) -> Iterator[Callable[..., RunningConsumer]]:
    """Start a consumer of the inventory queue in a thread; always stopped and joined at the end."""
    running: list[RunningConsumer] = []

    def start(
        handler: Handler,
        *,
        amqp_url: str = broker,
        session_factory: sessionmaker[Session] | None = None,
        max_attempts: int = 4,
        concurrency: int | None = None,
        concurrent_batch_size: int = 1,
        concurrent_batch_bytes: int | None = None,
        **config_overrides: Any,
    ) -> RunningConsumer:
        config = ConsumerConfig(amqp_url=amqp_url, retry_delays_ms=DELAYS_MS, max_attempts=max_attempts,
                                **config_overrides)
        runner = RecordingRunner(BatchRunner(handler, session_factory or make_session_factory(db_engine), config))
        consumer = (Consumer(QUEUE, runner, config) if concurrency is None  # type: ignore[arg-type]
                    else ConcurrentConsumer(QUEUE, runner, config, concurrency=concurrency,
                                            batch_size=concurrent_batch_size, batch_bytes=concurrent_batch_bytes))
        stop_event = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop_event,), name="test-consumer", daemon=True)
        thread.start()
        running.append(RunningConsumer(consumer, runner, stop_event, thread))
        if not consumer.connected.wait(10):
            pytest.fail("the consumer never started consuming")
        return running[-1]

    yield start
    for each in running:
        each.stop()
    with Session(db_engine) as session, session.begin():
        session.execute(delete(ProcessedEvent).where(ProcessedEvent.event_type == EVENT_TYPE))


@pytest.fixture
def publish(broker: str) -> Iterator[Callable[..., str]]:
    """Publish a confirmed inventory.change message; returns its message id."""
    publisher = ConfirmingPublisher(broker)

    def send(body: bytes = b'{"sku": "SKU-1", "new_quantity": 5}', event_id: str | None = None) -> str:
        event_id = event_id or new_id()
        message = OutgoingMessage(EVENTS_EXCHANGE, QUEUE.routing_key, body, event_id)
        deadline = time.monotonic() + 10
        while True:
            try:
                publisher.publish(message)
                return event_id
            except BrokerUnavailable:
                # After a test drops the vhost's connections the publisher reconnects on a later call.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    yield send
    publisher.close()


# --- the loop ----------------------------------------------------------------------------


def test_handled_message_is_committed_then_acked(start_consumer, publish, broker, db_engine):
    # given a consumer whose handler records the event
    seen: list[Delivery] = []

    def handler(delivery: Delivery, session: Session) -> None:
        seen.append(delivery)
        record_event(delivery, session)

    running = start_consumer(handler)

    # when a message arrives
    event_id = publish()

    # then its row is committed and, once the consumer is gone, nothing is left to redeliver
    wait_until(lambda: committed(db_engine, event_id) == 1, "the event to be committed")
    running.stop()
    assert all_queues_empty(broker)
    assert [d.message_id for d in seen] == [event_id]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("SKU-404 does not exist"), "PermanentError: SKU-404 does not exist"),
        (KeyError("sku"), "unexpected KeyError: 'sku'"),
    ],
)
def test_permanent_error_parks_the_message_with_its_reason_and_the_next_one_is_handled(
    start_consumer, publish, broker, db_engine, error, reason
):
    # given a consumer whose handler fails for good on one message
    body = b'{"sku": "SKU-404", "new_quantity": 1, "note": "caf\xc3\xa9"}'
    bad_id = new_id()
    handler, seen = failing_for(bad_id, error)
    running = start_consumer(handler)

    # when that message arrives, then another one
    publish(body, bad_id)
    wait_until(lambda: queue_depth(broker, QUEUE.parking_queue) == 1, "the message to be parked")
    good_id = publish()

    # then the consumer goes on: the next message is committed, the bad one is parked as it was
    wait_until(lambda: committed(db_engine, good_id) == 1, "the next event to be committed")
    running.stop()
    parked = drain(broker, QUEUE.parking_queue)
    assert [m.properties.message_id for m in parked] == [bad_id]
    assert parked[0].body == body
    assert parked[0].properties.headers[PARK_REASON_HEADER] == reason
    assert committed(db_engine, bad_id) == 0
    assert [d.message_id for d in seen] == [bad_id, good_id]
    assert all_queues_empty(broker)


def test_undecodable_message_is_parked_not_requeued(start_consumer, publish, broker, db_engine):
    # given a consumer whose handler decodes the body first
    seen: list[Delivery] = []

    def handler(delivery: Delivery, session: Session) -> None:
        seen.append(delivery)
        decode(delivery)
        record_event(delivery, session)

    running = start_consumer(handler)

    # when a body that is not JSON arrives
    body = b"\xff\xfe{not json"
    event_id = publish(body)

    # then it is parked once with the decode error, and nothing of it is left to come back
    wait_until(lambda: queue_depth(broker, QUEUE.parking_queue) == 1, "the message to be parked")
    running.stop()
    parked = drain(broker, QUEUE.parking_queue)
    assert [m.body for m in parked] == [body]
    assert parked[0].properties.headers[PARK_REASON_HEADER] == f"MessageDecodeError: message {event_id} is not JSON"
    assert len(seen) == 1
    assert all_queues_empty(broker)


def test_transient_error_is_retried_through_the_delay_queues_until_it_succeeds(
    start_consumer, publish, broker, db_engine
):
    # given a handler that finds the database unavailable twice for one message
    event_id = new_id()
    handler, seen = failing_for(event_id, DatabaseUnavailable("connection refused"), times=2)
    running = start_consumer(handler)

    # when that message arrives
    publish(event_id=event_id)

    # then it comes back with a growing attempt number and is committed exactly once
    wait_until(lambda: committed(db_engine, event_id) == 1, "the event to be committed")
    running.stop()
    assert [d.headers.get(ATTEMPT_HEADER) for d in seen] == [None, 2, 3]
    assert running.runner.outcomes[event_id] == [Retry(200, 2), Retry(400, 3), Done()]
    assert committed(db_engine, event_id) == 1
    assert all_queues_empty(broker)


def test_transient_error_that_never_ends_is_parked_after_max_attempts(start_consumer, publish, broker):
    # given a handler that never reaches the database
    event_id = new_id()
    handler, seen = failing_for(event_id, DatabaseUnavailable("connection refused"))
    running = start_consumer(handler, max_attempts=4)

    # when a message arrives
    publish(event_id=event_id)

    # then it is tried four times, then parked saying so
    wait_until(lambda: queue_depth(broker, QUEUE.parking_queue) == 1, "the message to be parked")
    running.stop()
    parked = drain(broker, QUEUE.parking_queue)
    assert [m.properties.message_id for m in parked] == [event_id]
    reason = parked[0].properties.headers[PARK_REASON_HEADER]
    assert "gave up after 4 attempts" in reason
    assert "DatabaseUnavailable: connection refused" in reason
    assert [d.headers.get(ATTEMPT_HEADER) for d in seen] == [None, 2, 3, 4]
    assert all_queues_empty(broker)


def test_permanent_error_in_a_batch_parks_only_that_message(start_consumer, publish, broker, db_engine):
    # given thirty messages waiting, one of which can never succeed
    event_ids = [publish() for _ in range(30)]
    bad_id = event_ids[12]
    handler, _seen = failing_for(bad_id, PermanentError("impossible stock figure"))

    # when a consumer takes them
    running = start_consumer(handler)

    # then all the others are committed and only that one is parked
    good_ids = [i for i in event_ids if i != bad_id]
    wait_until(lambda: committed_ids(db_engine, good_ids) == set(good_ids), "the other events to be committed")
    wait_until(lambda: queue_depth(broker, QUEUE.parking_queue) == 1, "the message to be parked")
    running.stop()
    assert max(running.runner.batch_sizes) > 1, "the messages were not handled as a batch"
    assert [m.properties.message_id for m in drain(broker, QUEUE.parking_queue)] == [bad_id]
    assert committed_ids(db_engine, event_ids) == set(good_ids)
    assert all_queues_empty(broker)


def test_transient_error_in_a_batch_does_not_hold_back_the_others(start_consumer, publish, broker, db_engine):
    # given thirty messages waiting, one of which meets an unavailable database in the batch and
    # again when tried alone
    event_ids = [publish() for _ in range(30)]
    flaky_id = event_ids[7]
    handler, _seen = failing_for(flaky_id, DatabaseUnavailable("deadlock detected"), times=2)

    # when a consumer takes them
    running = start_consumer(handler)

    # then the others are committed without waiting, and the flaky one after its retry
    wait_until(lambda: committed_ids(db_engine, event_ids) == set(event_ids), "every event to be committed")
    running.stop()
    assert max(running.runner.batch_sizes) > 1, "the messages were not handled as a batch"
    assert running.runner.outcomes[flaky_id] == [Retry(200, 2), Done()]
    assert all(running.runner.outcomes[i] == [Done()] for i in event_ids if i != flaky_id)
    assert all_queues_empty(broker)


def test_a_concurrent_consumer_commits_and_acks_each_message_while_another_is_held_up(
        start_consumer, publish, broker, db_engine):
    # given a consumer of two at a time whose first message is held up until the test lets it go
    held, let_go = new_id(), threading.Event()

    def handler(delivery: Delivery, session: Session) -> None:
        if delivery.message_id == held:
            let_go.wait(15)
        record_event(delivery, session)

    running = start_consumer(handler, concurrency=2)

    # when that message and three others arrive
    publish(event_id=held)
    others = [publish() for _ in range(3)]

    # then the others are committed and acked one by one meanwhile
    wait_until(lambda: committed_ids(db_engine, others) == set(others), "the others committed")
    assert committed(db_engine, held) == 0
    running.stop_event.set()  # stopping: the held one still ends, and is acked
    let_go.set()
    running.stop()
    assert committed(db_engine, held) == 1
    assert all_queues_empty(broker)


def test_a_message_held_up_holds_back_no_ack_of_the_others(start_consumer, publish, broker, db_engine):
    # given a consumer of two at a time with a prefetch window of three, its oldest message held up
    held, let_go = new_id(), threading.Event()

    def handler(delivery: Delivery, session: Session) -> None:
        if delivery.message_id == held:
            let_go.wait(30)
        record_event(delivery, session)

    running = start_consumer(handler, concurrency=2, prefetch=3)
    publish(event_id=held)

    # when ten more arrive
    others = [publish() for _ in range(10)]

    # then all ten are handled meanwhile: each was acked on its own as it ended, so the window kept
    # room for the next (acked only behind the held one, they would have stopped after two)
    wait_until(lambda: committed_ids(db_engine, others) == set(others), "the others committed")
    assert committed(db_engine, held) == 0
    let_go.set()
    wait_until(lambda: committed(db_engine, held) == 1, "the held message committed")
    running.stop()
    assert all_queues_empty(broker)


@pytest.mark.parametrize(("batch_bytes", "batch_sizes"), [
    (None, [1, 1, 2, 5, 5]),
    (80, [1, 1, 2, 2, 2, 2, 2, 2]),  # two 35-byte bodies fit in 80 bytes, a third does not
])
def test_a_concurrent_consumer_of_batches_takes_what_waits_in_batches_while_one_is_held_up(
        start_consumer, publish, broker, db_engine, batch_bytes, batch_sizes):
    # given a consumer of two batches of up to five at a time (and perhaps of at most so many bytes
    # of bodies), both busy with a message held up
    held = {new_id(): (threading.Event(), threading.Event()) for _ in range(2)}  # id -> (entered, let go)

    def handler(delivery: Delivery, session: Session) -> None:
        if delivery.message_id in held:
            entered, let_go = held[delivery.message_id]
            entered.set()
            let_go.wait(15)
        record_event(delivery, session)

    running = start_consumer(handler, concurrency=2, concurrent_batch_size=5, concurrent_batch_bytes=batch_bytes)
    first, second = held
    for event_id, (entered, _) in held.items():
        publish(event_id=event_id)
        assert entered.wait(10), "a held message never reached the handler"

    # when twelve others wait, and the first held message is let go
    others = [publish() for _ in range(12)]
    wait_until(lambda: running.consumer.waiting == 12, "the others to wait in the consumer")
    held[first][1].set()

    # then the others are committed in batches as large as allowed while the second is still held
    wait_until(lambda: committed_ids(db_engine, others) == set(others), "the others committed")
    assert committed(db_engine, second) == 0
    held[second][1].set()
    wait_until(lambda: committed(db_engine, second) == 1, "the second held message committed")
    running.stop()
    assert sorted(running.runner.batch_sizes) == batch_sizes
    assert all_queues_empty(broker)


def test_slow_handler_keeps_the_connection_alive(start_consumer, publish, broker, db_engine, caplog):
    # given a one-second heartbeat and a handler that takes four seconds
    caplog.set_level(logging.WARNING, logger="erp_sync.shared")
    seen: list[Delivery] = []

    def slow_handler(delivery: Delivery, session: Session) -> None:
        seen.append(delivery)
        time.sleep(4)
        record_event(delivery, session)

    running = start_consumer(slow_handler, amqp_url=f"{broker}?heartbeat=1")

    # when a message arrives
    event_id = publish()

    # then it is handled once, acked on the same connection, never redelivered
    wait_until(lambda: committed(db_engine, event_id) == 1, "the event to be committed")
    running.stop()
    assert [(d.message_id, d.redelivered) for d in seen] == [(event_id, False)]
    assert not [r for r in caplog.records if "lost RabbitMQ" in r.getMessage()]
    assert all_queues_empty(broker)


def test_consumer_reconnects_by_itself_when_the_broker_drops_it(
    start_consumer, publish, broker, amqp_vhost, db_engine, caplog
):
    # given a consumer that has handled a message
    caplog.set_level(logging.WARNING, logger="erp_sync.shared")
    running = start_consumer(record_event)
    first_id = publish()
    wait_until(lambda: committed(db_engine, first_id) == 1, "the first event to be committed")

    # when the broker drops every connection, and another message arrives
    close_all_connections(amqp_vhost)
    wait_until(lambda: any("lost RabbitMQ" in r.getMessage() for r in caplog.records), "the drop to be noticed")
    second_id = publish()

    # then the consumer is back and handles it
    wait_until(lambda: committed(db_engine, second_id) == 1, "the second event to be committed")
    assert running.consumer.connected.is_set()
    running.stop()
    assert committed(db_engine, first_id) == 1
    assert all_queues_empty(broker)


def test_database_outage_is_retried_not_parked_and_the_message_lands_once_it_is_back(
    start_consumer, publish, broker, db_engine, migrated_database_url
):
    # given a consumer that reaches PostgreSQL through a proxy, and has already used it
    url = make_url(migrated_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    try:
        running = start_consumer(record_event, session_factory=make_session_factory(engine), max_attempts=20)
        warm_id = publish()
        wait_until(lambda: committed(db_engine, warm_id) == 1, "the first event to be committed")

        # when the database goes away and a message arrives
        proxy.cut()
        event_id = publish()

        # then it goes round the retry path, neither committed nor parked
        wait_until(lambda: running.runner.retries_of(event_id) >= 2, "two retries")
        assert committed(db_engine, event_id) == 0
        assert queue_depth(broker, QUEUE.parking_queue) == 0

        # and when the database is back, it is committed exactly once
        proxy.restore()
        wait_until(lambda: committed(db_engine, event_id) == 1, "the event to be committed")
        running.stop()
        outcomes = running.runner.outcomes[event_id]
        assert outcomes[-1] == Done()
        assert all(isinstance(outcome, Retry) for outcome in outcomes[:-1])
        assert committed(db_engine, event_id) == 1
        assert all_queues_empty(broker)
    finally:
        proxy.close()
        engine.dispose()


# --- the batch runner alone --------------------------------------------------------------


@pytest.fixture
def runner_session_factory(db_session: Session) -> sessionmaker[Session]:
    """Sessions on the test's rolled-back transaction: the runner's commits become savepoints."""
    return sessionmaker(bind=db_session.connection(), join_transaction_mode="create_savepoint")


def delivery(event_id: str, attempt: int | None = None) -> Delivery:
    headers = {} if attempt is None else {ATTEMPT_HEADER: attempt}
    return Delivery(delivery_tag=1, body=b"{}", message_id=event_id, content_type="application/json", headers=headers)


def runner_config() -> ConsumerConfig:
    return ConsumerConfig(amqp_url="amqp://unused", retry_delays_ms=DELAYS_MS, max_attempts=4)


def stored(session: Session, event_ids: list[str]) -> set[str]:
    return set(session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(event_ids))))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PermanentError("impossible"), Park("PermanentError: impossible")),
        (KeyError("sku"), Park("unexpected KeyError: 'sku'")),
        (DatabaseUnavailable("deadlock"), Retry(200, 2)),
    ],
)
def test_batch_runner_decides_for_the_failing_message_and_commits_the_rest(
    runner_session_factory, db_session, error, expected
):
    # given a batch whose middle message fails
    event_ids = [new_id() for _ in range(3)]
    handler, _seen = failing_for(event_ids[1], error)
    runner = BatchRunner(handler, runner_session_factory, runner_config())

    # when it runs
    outcomes = runner.run([delivery(i) for i in event_ids])

    # then only that message has an outcome, and the others are stored
    assert outcomes == [Done(), expected, Done()]
    assert stored(db_session, event_ids) == {event_ids[0], event_ids[2]}


def test_batch_runner_on_core_connections_commits_all_but_the_failing_messages_writes(db_engine, committed_session):
    # given a batch whose middle message writes its row and then fails, on the engine's own connections
    event_ids = [new_id() for _ in range(3)]

    def record_then_fail_the_middle(delivery: Delivery, connection: Connection) -> None:
        connection.execute(insert(ProcessedEvent).values(event_id=delivery.message_id, event_type=EVENT_TYPE))
        if delivery.message_id == event_ids[1]:
            raise PermanentError("impossible")

    runner = BatchRunner(record_then_fail_the_middle, db_engine.connect, runner_config())

    # when it runs
    outcomes = runner.run([delivery(i) for i in event_ids])

    # then that message is parked, its row rolled back with it, and the others' rows are committed
    assert outcomes == [Done(), Park("PermanentError: impossible"), Done()]
    assert stored(committed_session, event_ids) == {event_ids[0], event_ids[2]}


@pytest.mark.parametrize("messages", [1, 2])
def test_batch_runner_on_core_connections_retries_when_the_database_cannot_be_reached(messages):
    # given a runner whose connections connect at once (the orders worker's), to a database that is down
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/erp_sync")
    runner = BatchRunner(lambda delivery, connection: None, engine.connect, runner_config())

    # when a batch arrives (one message alone is the orders worker's usual batch)
    try:
        outcomes = runner.run([delivery(new_id()) for _ in range(messages)])
    finally:
        engine.dispose()

    # then each message goes round the retry path, as with a Session, rather than stopping the worker
    assert outcomes == [Retry(200, 2)] * messages


@pytest.fixture
def proxied_engine(migrated_database_url: str) -> Iterator[tuple[TcpProxy, Engine]]:
    """An engine reaching the test database through a proxy the test can cut."""
    url = make_url(migrated_database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    engine = make_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield proxy, engine
    proxy.close()
    engine.dispose()


@pytest.mark.parametrize("with_batch_handler", [False, True], ids=["message handler", "batch handler"])
def test_a_batch_with_the_database_out_of_reach_is_retried_without_trying_each_message(proxied_engine, caplog,
                                                                                       with_batch_handler):
    # given a batch of six and a database that closes every connection at once (each try would wait
    # out a connect timeout against one that drops packets)
    proxy, engine = proxied_engine
    calls: list[list[str | None]] = []
    runner = BatchRunner(record_event, make_session_factory(engine), runner_config(),
                         batch_of(record_event, calls) if with_batch_handler else None)
    proxy.cut()
    batch = [delivery(new_id()) for _ in range(6)]

    # when it runs
    with caplog.at_level(logging.INFO, logger="erp_sync.shared"):
        outcomes = runner.run(batch)

    # then every message goes round the retry path (the outage hold's to keep) after the batch's try
    # (by the batch handler, or in one transaction), one message's and a `SELECT 1`: not one
    # connection a message
    assert outcomes == [Retry(DELAYS_MS[0], 2)] * 6
    assert proxy.refused == 3
    assert (f"the database is out of reach (database unavailable: connection failed: "
            f"connection to server at \"127.0.0.1\", port {proxy.port} failed: server closed the connection "
            f"unexpectedly): the batch's last 5 messages, {batch[1].message_id} to {batch[5].message_id}, are "
            "retried untried") in caplog.text
    assert caplog.text.count("attempt 2 in") == 1


def test_a_message_that_breaks_its_own_connection_holds_back_none_of_the_others(runner_session_factory,
                                                                               db_engine, db_session):
    # given a batch whose first message ends its own connection each time it runs (a statement a
    # proxy's timeout kills), while the database answers everyone else
    event_ids = [new_id() for _ in range(4)]

    def record_or_break(delivery: Delivery, session: Session) -> None:
        if delivery.message_id == event_ids[0]:
            session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        record_event(delivery, session)

    runner = BatchRunner(record_or_break, make_session_factory(db_engine), runner_config())

    # when it runs
    outcomes = runner.run([delivery(event_id) for event_id in event_ids])

    # then that message goes round the retry path, and the other three are applied
    assert isinstance(outcomes[0], Retry) and outcomes[1:] == [Done()] * 3
    assert committed_ids(db_engine, event_ids) == set(event_ids[1:])


def test_a_batch_that_met_a_dead_connection_is_applied_message_by_message_on_new_ones(proxied_engine, db_engine,
                                                                                     caplog):
    # given a pooled connection that dies while the database stays (a backend killed, a proxy's restart)
    proxy, engine = proxied_engine
    check_database(engine)
    proxy.cut()
    proxy.restore()
    event_ids = [new_id() for _ in range(3)]
    runner = BatchRunner(record_event, make_session_factory(engine), runner_config())

    # when a batch runs
    with caplog.at_level(logging.INFO, logger="erp_sync.shared"):
        outcomes = runner.run([delivery(event_id) for event_id in event_ids])

    # then its try on the dead connection is not taken for an outage: each message lands at once
    assert "batch of 3 failed (database unavailable: " in caplog.text
    assert outcomes == [Done()] * 3
    assert committed_ids(db_engine, event_ids) == set(event_ids)


def test_batch_runner_turns_a_database_refusal_into_a_park(runner_session_factory, db_session):
    # given a message whose event was already recorded
    event_id = new_id()
    db_session.add(ProcessedEvent(event_id=event_id, event_type=EVENT_TYPE))
    db_session.flush()
    runner = BatchRunner(record_event, runner_session_factory, runner_config())

    # when it is handled again by a handler that is not idempotent
    outcomes = runner.run([delivery(event_id), delivery(other := new_id())])

    # then the unique violation parks it and the other message is still stored
    assert isinstance(outcomes[0], Park)
    assert outcomes[0].reason.startswith("PermanentError: database refused the data: [23505]")
    assert outcomes[1] == Done()
    assert stored(db_session, [event_id, other]) == {event_id, other}


# --- the batch runner with a batch handler -----------------------------------------------


def batch_of(handler: Handler, calls: list[list[str | None]]) -> BatchHandler:
    """A batch handler doing what `handler` does for each message, noting each batch it gets."""

    def handle_batch(batch: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        calls.append([d.message_id for d in batch])
        return [handler(d, session) for d in batch]

    return handle_batch


def test_batch_handler_takes_a_good_batch_in_one_call(runner_session_factory, db_session):
    # given a runner with a batch handler, and three good messages
    event_ids = [new_id() for _ in range(3)]
    per_message, seen = failing_for("none", PermanentError("never raised"))
    calls: list[list[str | None]] = []
    runner = BatchRunner(per_message, runner_session_factory, runner_config(), batch_of(record_event, calls))

    # when the batch runs
    outcomes = runner.run([delivery(i) for i in event_ids])

    # then the batch handler had them all at once, the per-message handler none, and all are stored
    assert outcomes == [Done()] * 3
    assert calls == [event_ids]
    assert seen == []
    assert stored(db_session, event_ids) == set(event_ids)


def test_batch_handler_follow_ups_are_each_messages_own(runner_session_factory):
    # given a batch handler that asks for a follow-up for the second message only
    follow_up = OutgoingMessage("exchange", "key", b"{}", "follow-up")

    def handle_batch(batch: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        return [None, [follow_up]]

    runner = BatchRunner(record_event, runner_session_factory, runner_config(), handle_batch)

    # when a batch of two runs
    outcomes = runner.run([delivery(new_id()), delivery(new_id())])

    # then each message has its own follow-ups
    assert outcomes == [Done(), Done((follow_up,))]


def test_single_message_skips_the_batch_handler(runner_session_factory, db_session):
    # given a runner with a batch handler
    calls: list[list[str | None]] = []
    runner = BatchRunner(record_event, runner_session_factory, runner_config(), batch_of(record_event, calls))

    # when a batch of one runs
    outcomes = runner.run([delivery(event_id := new_id())])

    # then the per-message path handled it
    assert outcomes == [Done()]
    assert calls == []
    assert stored(db_session, [event_id]) == {event_id}


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("impossible"),
        MessageDecodeError("message is not JSON", raw=b"{"),
        KeyError("sku"),
        DatabaseUnavailable("deadlock"),
    ],
)
def test_batch_with_a_bad_message_falls_back_to_the_per_message_path(runner_session_factory, db_session, error):
    # given two runners over the same handler, one with a batch handler, and a batch for each
    # whose middle message fails
    plain_ids, batched_ids = [new_id() for _ in range(3)], [new_id() for _ in range(3)]
    plain_handler, plain_seen = failing_for(plain_ids[1], error)
    batched_handler, seen = failing_for(batched_ids[1], error)
    calls: list[list[str | None]] = []
    plain = BatchRunner(plain_handler, runner_session_factory, runner_config())
    batched = BatchRunner(batched_handler, runner_session_factory, runner_config(), batch_of(batched_handler, calls))

    # when each runs its batch
    expected = plain.run([delivery(i) for i in plain_ids])
    outcomes = batched.run([delivery(i) for i in batched_ids])

    # then the batch handler was tried once (up to the bad message), rolled back, and the
    # per-message path saw the same, decided the same outcomes and stored the same rows as without it
    assert calls == [batched_ids]
    assert [batched_ids.index(d.message_id) for d in seen] == [0, 1, *(plain_ids.index(d.message_id) for d in plain_seen)]
    assert outcomes == expected
    assert outcomes[1] != Done()
    assert stored(db_session, batched_ids) == {batched_ids[0], batched_ids[2]}
    assert stored(db_session, plain_ids) == {plain_ids[0], plain_ids[2]}


def test_the_per_message_path_after_a_failed_batch_sees_each_message_as_redelivered(runner_session_factory):
    # given a batch handler that fails, whose commit might have landed unseen in production
    event_ids = [new_id() for _ in range(2)]
    seen: list[Delivery] = []

    def handle(delivery: Delivery, session: Session) -> None:
        seen.append(delivery)

    def fail_batch(batch: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        raise DatabaseUnavailable("the connection broke at COMMIT")

    runner = BatchRunner(handle, runner_session_factory, runner_config(), fail_batch)

    # when its batch falls back to the per-message path
    outcomes = runner.run([delivery(i) for i in event_ids])

    # then each message is handled as one that may have been handled before (a catalog duplicate
    # then asks again for the images its first handling would have asked for)
    assert outcomes == [Done(), Done()]
    assert [(d.message_id, d.redelivered) for d in seen] == [(i, True) for i in event_ids]


def test_batch_handler_that_loses_a_message_commits_nothing_of_its_own(runner_session_factory, db_session):
    # given a batch handler that stores the messages but answers for one fewer
    event_ids = [new_id() for _ in range(3)]
    stored_by_batch: list[str] = []

    def handle_batch(batch: list[Delivery], session: Session) -> list[Iterable[OutgoingMessage] | None]:
        for d in batch:
            session.add(ProcessedEvent(event_id=d.message_id, event_type="batch"))
        stored_by_batch.extend(d.message_id or "" for d in batch)
        return [None] * (len(batch) - 1)

    runner = BatchRunner(record_event, runner_session_factory, runner_config(), handle_batch)

    # when the batch runs
    outcomes = runner.run([delivery(i) for i in event_ids])

    # then its work was rolled back and the per-message handler stored them instead
    assert stored_by_batch == event_ids
    assert outcomes == [Done()] * 3
    types = set(db_session.scalars(select(ProcessedEvent.event_type).where(ProcessedEvent.event_id.in_(event_ids))))
    assert types == {EVENT_TYPE}


def test_settled_messages_are_counted_by_outcome_once_acked(start_consumer, publish, broker, db_engine):
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("erp_sync_messages_total", {"queue": QUEUE.name, "outcome": outcome}) or 0.0

    # given a handler that fails twice on one message, for good on another, and handles a third
    before = {outcome: count(outcome) for outcome in ("applied", "retried", "parked")}
    flaky, bad = new_id(), new_id()
    handler, _ = failing_for(flaky, DatabaseUnavailable("connection refused"), times=2)

    def handle(delivery: Delivery, session: Session) -> None:
        if delivery.message_id == bad:
            raise PermanentError("never")
        handler(delivery, session)

    running = start_consumer(handle)

    # when the three arrive
    publish(event_id=flaky)
    publish(event_id=bad)
    fine = publish()

    # then two are applied and one parked, and each trip through a delay queue is counted as a retry
    wait_until(lambda: committed(db_engine, flaky) == 1 and committed(db_engine, fine) == 1, "both to commit")
    wait_until(lambda: count("applied") - before["applied"] == 2, "the two acks to be counted")
    running.stop()
    retries = sum(isinstance(outcome, Retry) for outcome in running.runner.outcomes[flaky])
    assert retries >= 1
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "applied": 2.0, "retried": float(retries), "parked": 1.0}


MILLISECOND_EPOCH = 1_772_000_000_000  # 2026 in milliseconds: the year 58,122 read as seconds


def test_header_values_pika_cannot_convert_hold_up_nothing(start_consumer, publish, broker, monkeypatch):
    # given a message whose headers hold a timestamp in milliseconds (as some clients send), parked by
    # its handler, and an ordinary message behind it
    odd_id, plain_id = new_id(), new_id()
    connection = pika.BlockingConnection(pika.URLParameters(broker))
    try:
        with monkeypatch.context() as patched:  # pika writes a timestamp from a datetime, in seconds
            patched.setattr(pika.data, "calendar", SimpleNamespace(timegm=lambda _: MILLISECOND_EPOCH))
            connection.channel().basic_publish(EVENTS_EXCHANGE, QUEUE.routing_key, b"{}", pika.BasicProperties(
                message_id=odd_id, headers={"sent": datetime(2026, 1, 1)}))
    finally:
        connection.close()
    publish(event_id=plain_id)
    handler, seen = failing_for(odd_id, PermanentError("not for us"))

    # when a consumer takes them
    running = start_consumer(handler)
    wait_for(lambda: {d.message_id for d in seen} == {odd_id, plain_id}, timeout=15)

    # then both were handled on its first connection (pika's decoder failed before: reconnect, redeliver,
    # for ever), and the odd one is parked with its timestamp as a number
    assert running.consumer.connections == 1
    [parked_message] = wait_for(lambda: drain(broker, QUEUE.parking_queue), timeout=10)
    assert parked_message.properties.message_id == odd_id
    assert parked_message.properties.headers["sent"] == MILLISECOND_EPOCH


def test_a_broker_that_takes_the_connection_and_never_answers_is_an_outage_the_consumer_waits_out(
    db_engine, caplog
):
    # given a "broker" that accepts TCP connections and never says a word
    caplog.set_level(logging.WARNING, logger="erp_sync.shared")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/%2F?stack_timeout=0.5&socket_timeout=0.5"
        config = ConsumerConfig(amqp_url=url, retry_delays_ms=DELAYS_MS, max_attempts=4)
        consumer = Consumer(QUEUE, BatchRunner(record_event, make_session_factory(db_engine), config), config)
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)

        # when a consumer tries to connect to it
        thread.start()
        wait_until(lambda: any("lost RabbitMQ" in r.getMessage() for r in caplog.records), "a failed connect")

        # then it is an outage it waits out, reconnecting, not an error that ends its thread
        assert thread.is_alive()
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert "Timeout during AMQP handshake" in next(r.getMessage() for r in caplog.records if "lost RabbitMQ" in r.getMessage())


def test_a_connection_for_a_check_to_a_broker_that_never_answers_is_broker_unavailable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/%2F?stack_timeout=0.5&socket_timeout=0.5"

        with pytest.raises(BrokerUnavailable, match="cannot connect to RabbitMQ"):
            blocking_connection(url, "check")


def test_a_vhost_rabbitmq_does_not_have_is_told_how_to_make_it(broker):
    # `erp-sync migrate` makes the database, not the vhost: a newcomer's own vhost needs rabbitmqctl
    url = broker.rsplit("/", 1)[0] + "/no-such-vhost-" + uuid.uuid4().hex[:8]

    with pytest.raises(BrokerUnavailable) as refused:
        blocking_connection(url, "check")

    assert "not found" in str(refused.value) and "rabbitmqctl add_vhost NAME" in str(refused.value)
