"""The consumer loop: the only worker code that touches pika.

It takes messages in small batches, has a worker thread run each batch through the worker's
runner (shared/batch_runner.py: one database transaction a batch), and only after the commit acks
them. A worker whose messages each wait on something slow, or whose batches wait on the database
about as long as they run Python, uses `ConcurrentConsumer` instead: several messages or batches
under way at once, each acked as soon as it is done. A failed message goes to its delay queue
(transient) or its parking queue (permanent) before its ack, so nothing is lost between the two.
While the handler runs, this thread keeps serving the connection, so heartbeats go on however long
a batch takes. A message back twice without an ack (`Delivery.suspect`: it may be what killed its
worker) is a batch of its own; the runner has it wait until it can run alone (workers/crash_guard.py).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy.orm import Session

from erp_sync.shared import amqp_headers  # noqa: F401 (pika decodes any header value; see there)
from erp_sync.shared.ack_book import AckBook
from erp_sync.shared.amqp_url import CONNECT_ERRORS, amqp_parameters
from erp_sync.shared import message_metrics
from erp_sync.shared.errors import BrokerUnavailable, PublishRejected, QueueFull, WorkerStopping
from erp_sync.shared.fields import id_named_in
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage, encodable
from erp_sync.shared.retry_policy import (
    ACQUIRED_COUNT_HEADER,
    ATTEMPT_HEADER,
    DELIVERY_COUNT_HEADER,
    LAST_ERROR_HEADER,
    PARK_REASON_HEADER,
    PARKED_AT_HEADER,
    RETURN_COUNT_HEADERS,
    Park,
    Retry,
    failed_attempts,
)
from erp_sync.shared.topology import PARKING_EXCHANGE, RETRY_EXCHANGE, WorkQueue

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
# Once is a connection lost, which takes back every message under way or prefetched; twice, the
# message may be what killed its worker (out of memory, a crash), and so may any of its neighbours.
SUSPECT_RETURNS = 2
# Any of these ends the connection; the broker redelivers what was not acked. A follow-up the
# broker refused (no queue bound: the topology is missing) is one too, until an operator fixes it.
CONNECTION_ERRORS = (*CONNECT_ERRORS, BrokerUnavailable, PublishRejected, WorkerStopping)


@dataclass(frozen=True)
class Delivery:
    """One message as the handler sees it: no channel, just its content."""

    delivery_tag: int
    body: bytes
    message_id: str | None
    content_type: str | None
    headers: dict[str, Any] = field(default_factory=dict)
    redelivered: bool = False
    published_at: int | None = None  # the publisher's timestamp, whole seconds since the epoch

    @property
    def suspect(self) -> bool:
        """Whether it may be what killed its worker: back from `SUSPECT_RETURNS` deliveries without an ack.

        It is handled alone, so that only its own attempts are counted (workers/crash_guard.py).
        """
        return self.redelivered and max(_whole(self.headers.get(DELIVERY_COUNT_HEADER)),
                                        _whole(self.headers.get(ACQUIRED_COUNT_HEADER))) >= SUSPECT_RETURNS


@dataclass(frozen=True)
class Done:
    """Handled; `follow_ups` are published (confirmed) after the commit and before the ack."""

    follow_ups: tuple[OutgoingMessage, ...] = ()
    outcome: str = "applied"  # how it counts on /metrics: applied, stale or duplicate


@dataclass(frozen=True)
class Handled:
    """What a handler may return to say its message changed nothing (stale, duplicate), with its follow-ups."""

    outcome: str
    follow_ups: tuple[OutgoingMessage, ...] = ()


# A handler may return messages to send once its effect is committed (e.g. media downloads).
HandlerResult = Handled | Iterable[OutgoingMessage] | None
Handler = Callable[[Delivery, Session], HandlerResult]
# Handles a whole batch at once, returning each message's result in the batch's order.
BatchHandler = Callable[[list[Delivery], Session], list[HandlerResult]]


Outcome = Done | Retry | Park


class Runner(Protocol):
    """Handles a batch and decides each message's outcome, in the batch's order (BatchRunner is one)."""

    def run(self, batch: list[Delivery]) -> list[Outcome]: ...


@dataclass(frozen=True)
class ConsumerConfig:
    amqp_url: str
    retry_delays_ms: tuple[int, ...]
    max_attempts: int
    prefetch: int = 100
    batch_size: int = 50
    batch_window_s: float = 0.005


def _whole(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _outcome_label(outcome: Outcome) -> str:
    return outcome.outcome if isinstance(outcome, Done) else "retried" if isinstance(outcome, Retry) else "parked"


def _settled(batch: list[Delivery], outcomes: list[Outcome]) -> list[tuple[str, int | None]]:
    """Each message's outcome label and publish time, as message_metrics.count_settled counts them."""
    return [(_outcome_label(outcome), delivery.published_at) for delivery, outcome in zip(batch, outcomes, strict=True)]


def _redirect(queue: WorkQueue, delivery: Delivery, outcome: Retry | Park) -> OutgoingMessage:
    if isinstance(outcome, Park):
        return parked(queue, delivery, outcome.reason)
    return retried(queue, delivery, outcome)


def retried(queue: WorkQueue, delivery: Delivery, retry: Retry) -> OutgoingMessage:
    """The message, sent to `queue`'s delay queue of the retry's delay, numbered as its next attempt.

    A new message: without the broker's counts of the returns of this one, which are not its own.
    """
    headers = {key: value for key, value in delivery.headers.items() if key not in RETURN_COUNT_HEADERS}
    return OutgoingMessage(RETRY_EXCHANGE, queue.retry_routing_key(retry.delay_ms), delivery.body,
                           delivery.message_id or "", delivery.content_type or "application/json",
                           encodable(headers) | {ATTEMPT_HEADER: retry.attempt})


def parked(queue: WorkQueue, delivery: Delivery, reason: str, message_id: str = "") -> OutgoingMessage:
    """The message, sent to `queue`'s parking queue with the reason (the first 1,000 characters) and the time."""
    # The attempt it was parked on, in a header of its own: a parking queue's delivery count moves with every listing.
    headers = encodable(delivery.headers) | {PARK_REASON_HEADER: reason[:1000], LAST_ERROR_HEADER: reason[:1000],
                                        PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
                                        ATTEMPT_HEADER: failed_attempts(delivery.headers) + 1}
    # Without a message id, the id its body names: `dlq replay ID` must be able to name it.
    named = delivery.message_id or message_id or id_named_in(delivery.body) or ""
    return OutgoingMessage(PARKING_EXCHANGE, queue.worker, delivery.body, named,
                           delivery.content_type or "application/json", headers)


def _while_serving(connection: pika.BlockingConnection, future: Future[_T]) -> _T:
    """The future's result, serving the connection (heartbeats) until it is there."""
    # With the prefetch window full no data arrives to end a wait early: the finished work
    # itself must wake this thread, or every batch would last the whole time limit.
    future.add_done_callback(lambda _: _wake(connection))
    while not future.done():
        connection.process_data_events(time_limit=0.1)
    return future.result()


def _wake(connection: pika.BlockingConnection) -> None:
    # A connection lost meanwhile is the consume loop's to handle, not this callback's.
    with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
        connection.add_callback_threadsafe(lambda: None)


class Consumer:
    """Consume one work queue until `stop` is set, reconnecting whenever the connection drops."""

    def __init__(
        self, queue: WorkQueue, runner: Runner, config: ConsumerConfig, publisher: ConfirmingPublisher | None = None
    ) -> None:
        self._queue = queue
        self._runner = runner
        self._config = config
        # Follow-ups go out through a confirming publisher: all of a batch's at once, then one wait.
        self._publisher = publisher or ConfirmingPublisher(config.amqp_url)
        self._owns_publisher = publisher is None
        self._buffer: list[Delivery] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{queue.worker}-handler")
        self.connected = threading.Event()
        self.connections = 0  # connections opened so far: more than one means a reconnect
        self._stop = threading.Event()

    @property
    def concurrency(self) -> int:
        """Batches under way at once."""
        return 1

    @property
    def batch_bytes(self) -> int | None:
        """Bytes of bodies a batch may hold past its first message (None: only its count bounds it)."""
        return None

    @property
    def waiting(self) -> int:
        """Messages received and not yet handed to the handler."""
        return len(self._buffer)

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        backoff_s = 0.5
        while not stop.is_set():
            try:
                self._consume(stop)
                backoff_s = 0.5
            except CONNECTION_ERRORS as exc:
                self.connected.clear()
                if stop.is_set():
                    # A shutdown, not an outage: what was under way stays unacked and is handed out again.
                    logger.info("stopped: %s", exc)
                    break
                logger.warning("lost RabbitMQ (%s); reconnecting in %.1f s", exc, backoff_s)
                stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 30.0)
        self._executor.shutdown(wait=True)
        if self._owns_publisher:
            self._publisher.close()

    def _consume(self, stop: threading.Event) -> None:
        parameters = amqp_parameters(self._config.amqp_url)
        parameters.client_properties = {"connection_name": f"erp-sync worker {self._queue.worker}"}
        connection = pika.BlockingConnection(parameters)
        self.connections += 1
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._config.prefetch)
            self._buffer.clear()
            self._opened(connection, channel)
            channel.basic_consume(self._queue.name, self._on_message)
            self.connected.set()
            message_metrics.CONSUMER_CONNECTED.labels(queue=self._queue.name).set(1)
            logger.info("consuming %s", self._queue.name)
            self._serve(connection, channel, stop)
        finally:
            self.connected.clear()
            message_metrics.CONSUMER_CONNECTED.labels(queue=self._queue.name).set(0)
            if connection.is_open:
                connection.close()

    def _opened(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        """A new connection's channel, before it consumes."""

    def _serve(self, connection: pika.BlockingConnection, channel: BlockingChannel, stop: threading.Event) -> None:
        while not stop.is_set():
            connection.process_data_events(time_limit=0.25)
            # Once stopped, what is still buffered stays unacked: the broker hands it out again.
            while self._buffer and not stop.is_set():
                self._handle_batch(connection, channel, self._take_batch(connection))

    def _on_message(
        self, _channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self._buffer.append(Delivery(
            delivery_tag=method.delivery_tag,
            body=body,
            message_id=properties.message_id,
            content_type=properties.content_type,
            headers=dict(properties.headers or {}),
            redelivered=method.redelivered,
            published_at=properties.timestamp,
        ))

    def _take_batch(self, connection: pika.BlockingConnection) -> list[Delivery]:
        # A short window lets a burst share one commit without holding a lone message back.
        deadline = time.monotonic() + self._config.batch_window_s
        while len(self._buffer) < self._config.batch_size and (left := deadline - time.monotonic()) > 0:
            connection.process_data_events(time_limit=left)
        return next_batch_of(self._buffer, self._config.batch_size)

    def _handle_batch(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        batch: list[Delivery],
    ) -> None:
        taken_at = time.monotonic()
        outcomes = _while_serving(connection, self._executor.submit(self._run_and_publish, batch))
        channel.basic_ack(batch[-1].delivery_tag, multiple=True)
        message_metrics.count_settled(self._queue.name, _settled(batch, outcomes), time.monotonic() - taken_at)

    def _run_and_publish(self, batch: list[Delivery]) -> list[Outcome]:
        """On a handler thread: the batch's outcomes, its follow-ups published once they are committed.

        One hand-off to the handler thread and back for both: at a few messages a second, each batch
        holds one, and a second round of wake-ups cost as much as its handler.
        """
        outcomes = self._runner.run(batch)
        if messages := self._follow_ups(batch, outcomes):
            self._publish_follow_ups(messages)
        return outcomes

    def _publish_follow_ups(self, messages: list[OutgoingMessage]) -> None:
        # Patient: a slow confirm taken for a lost connection would redeliver the batch and
        # publish its follow-ups again. A full queue is waited out the same way, unacked. Once
        # stopped, the batch stays unacked: redelivered, its events re-request what is pending.
        pause_s = 0.5
        # The first refusal is news; the tries after it, while the next queue stays full, are not.
        level = logging.WARNING
        while messages := self._publisher.publish_what_fits(messages, stop=self._stop):
            if self._stop.wait(pause_s):
                raise QueueFull(f"{len(messages)} follow-ups refused as their queue is full, first "
                                f"{messages[0].message_id}: the batch stays unacked")
            logger.log(level, "%d follow-ups refused as their queue is full, first %s; trying again",
                       len(messages), messages[0].message_id)
            level, pause_s = logging.INFO, min(pause_s * 2, 30.0)

    def _follow_ups(self, batch: list[Delivery], outcomes: list[Outcome]) -> list[OutgoingMessage]:
        """What the batch's outcomes publish: the handlers' follow-ups, and each failure's retry or parking."""
        return [message for delivery, outcome in zip(batch, outcomes, strict=True)
                for message in (outcome.follow_ups if isinstance(outcome, Done)
                                else (_redirect(self._queue, delivery, outcome),))]


class ConcurrentConsumer(Consumer):
    """Consume one work queue with `concurrency` batches (of up to `batch_size` messages) under way at once.

    For messages that each wait on something slow (the orders worker's ERP calls, one at a time):
    a slow one holds up only itself, and the next message starts in the first free thread. For
    batches that wait on the database for about as long as they run Python (the catalog worker's):
    one thread runs Python while another's statements run in PostgreSQL. Each batch goes through the
    runner in its own transaction; its follow-ups are published from its thread, and its acks go
    back to the connection's thread (`_Settling`; batches end out of order). Once stopped,
    batches under way end and are acked; the others stay unacked, and the broker hands them out again.
    """

    def __init__(self, queue: WorkQueue, runner: Runner, config: ConsumerConfig,
                 publisher: ConfirmingPublisher | None = None, *, concurrency: int, batch_size: int = 1,
                 batch_bytes: int | None = None) -> None:
        super().__init__(queue, runner, config, publisher)
        self._concurrency = concurrency
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{queue.worker}-handler")
        self._running = 0  # touched on the connection's thread only
        self._failure: BaseException | None = None
        self._settling: _Settling  # the current connection's (`_opened`)

    @property
    def concurrency(self) -> int:
        return self._concurrency

    @property
    def batch_bytes(self) -> int | None:
        return self._batch_bytes

    def _serve(self, connection: pika.BlockingConnection, channel: BlockingChannel, stop: threading.Event) -> None:
        self._running, self._failure = 0, None
        try:
            while not stop.is_set():
                connection.process_data_events(time_limit=0.25)
                if self._failure is not None:
                    raise self._failure
                while self._buffer and self._running < self._concurrency:
                    batch = self._next_batch()
                    self._running += 1
                    self._executor.submit(self._handle_alone, self._settling, batch)
        finally:
            while self._running and connection.is_open:
                connection.process_data_events(time_limit=0.1)

    def _opened(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self._settling = _Settling(connection, channel, self._settle)

    def _on_message(
        self, channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes
    ) -> None:
        self._settling.delivered(method.delivery_tag)
        super()._on_message(channel, method, properties, body)

    def _next_batch(self) -> list[Delivery]:
        """Up to `batch_size` messages off the buffer, and no more than `batch_bytes` of bodies past the first."""
        size, total = 0, 0
        for delivery in _unsuspected_run(self._buffer[: self._batch_size]):
            total += len(delivery.body)
            if size and self._batch_bytes is not None and total > self._batch_bytes:
                break
            size += 1
        batch = self._buffer[:size]
        del self._buffer[:size]
        return batch

    def _handle_alone(self, settling: _Settling, batch: list[Delivery]) -> None:
        taken_at = time.monotonic()
        try:
            outcomes = self._run_and_publish(batch)
        except Exception as exc:  # noqa: BLE001 (handed to the connection's thread, which raises it)
            settling.add(_Ended(batch, [], taken_at, exc))
        else:
            settling.add(_Ended(batch, outcomes, taken_at, None))

    def _settle(self, ended: list[_Ended], book: AckBook) -> None:
        """On the connection's thread: count the batches that ended, and note what to ack."""
        for end in ended:
            self._running -= 1
            if end.failure is None:
                book.done(delivery.delivery_tag for delivery in end.batch)
                message_metrics.count_settled(self._queue.name, _settled(end.batch, end.outcomes),
                                              time.monotonic() - end.taken_at)
            else:
                self._failure = end.failure  # the loop raises it: a reconnect brings the batch back


def _unsuspected_run(buffer: list[Delivery]) -> list[Delivery]:
    """The buffer's first message alone if it is a suspect, else its messages up to the first suspect."""
    for index, delivery in enumerate(buffer):
        if delivery.redelivered and delivery.suspect:  # `redelivered` first: the check of every message
            return buffer[: index or 1]
    return buffer


def next_batch_of(buffer: list[Delivery], most: int) -> list[Delivery]:
    """Off the buffer: its next batch of at most `most` messages, a suspect always alone."""
    batch = _unsuspected_run(buffer[:most])
    del buffer[: len(batch)]
    return batch


@dataclass(frozen=True)
class _Ended:
    """A batch a handler thread has finished with: its outcomes, or the failure that ends the connection."""

    batch: list[Delivery]
    outcomes: list[Outcome]
    taken_at: float
    failure: BaseException | None


class _Settling:
    """Batches ended on handler threads, handed to one connection's thread, where they are counted and acked.

    Batches that end while the connection's thread is busy are settled in one go: one wake-up, and
    acks in as few frames as their order allows (AckBook). A connection lost meanwhile takes its
    batches back unacked (the broker hands them out again); its successor gets a new `_Settling`.
    """

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel,
                 settle: Callable[[list[_Ended], AckBook], None]) -> None:
        self._book = AckBook()
        self._connection = connection
        self._channel = channel
        self._settle = settle
        self._lock = threading.Lock()
        self._ended: list[_Ended] = []

    def delivered(self, delivery_tag: int) -> None:
        """On the connection's thread: a message has arrived and is out until settled."""
        self._book.delivered(delivery_tag)

    def add(self, ended: _Ended) -> None:
        """From a handler thread."""
        with self._lock:
            self._ended.append(ended)
            if len(self._ended) > 1:
                return  # a wake-up is on its way and will take this batch too
        with contextlib.suppress(pika.exceptions.ConnectionWrongStateError):
            self._connection.add_callback_threadsafe(self._on_connection_thread)

    def _on_connection_thread(self) -> None:
        with self._lock:
            ended, self._ended = self._ended, []
        self._settle(ended, self._book)
        for frame in self._book.frames():
            self._channel.basic_ack(frame.delivery_tag, multiple=frame.multiple)
