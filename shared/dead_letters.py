"""Parked messages (the dead letters): list them with their reasons, replay them, purge them.

A message is parked on `erp-sync.<worker>.parked` by the consumer (with its reason, attempts and
time in headers) or by the broker after too many deliveries without an ack (`x-death`). Reading
takes each message without an ack, in consumer batches (shared/parked_batches.py), and hands it
back at the end (basic.nack), so a listing changes nothing. A replay puts the message back on its
work queue as it first arrived; the workers record every event and order id with its effect, so
replaying one already applied changes nothing. Messages are taken a batch a round trip but read
from the socket as they are used, so the process holds about one body at a time: a parking queue
may hold more bodies than the command's memory (a bulk load's thousand-variant groups). A message
settled (replayed or dropped) is acked with the rest of its batch: cut short before, it stays parked.
One reader at a time (shared/parked_reader.py).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from erp_sync.shared import amqp_headers  # noqa: F401 (pika decodes any header value; see there)
from erp_sync.shared.broker import blocking_connection
from erp_sync.shared.errors import BrokerUnavailable, ConfigurationError, PublishRejected
from erp_sync.shared.parked_batches import BatchedTake
from erp_sync.shared.parked_reader import sole_reader
from erp_sync.shared.publisher import encodable
from erp_sync.shared.retry_policy import (
    ATTEMPT_HEADER, LAST_ERROR_HEADER, PARK_REASON_HEADER, PARKED_AT_HEADER, RETURN_COUNT_HEADERS,
)
from erp_sync.shared.topology import CRASH_DELIVERY_LIMIT, WORK_QUEUES, WorkQueue

logger = logging.getLogger(__name__)

HAND_BACK_WAIT_S = 60.0
REPLAY_BLOCKED_TIMEOUT_S = 60.0
HAND_BACK_POLL_S = 0.05

# Headers of the failed attempts; a replay starts the message afresh.
FAILURE_HEADERS = (ATTEMPT_HEADER, PARK_REASON_HEADER, LAST_ERROR_HEADER, PARKED_AT_HEADER, "x-death",
                   "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                   "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", *RETURN_COUNT_HEADERS)


@dataclass(frozen=True)
class ParkedMessage:
    """One parked message: whose queue, its event or order id, why, after how many attempts, since when."""

    worker: str
    message_id: str
    reason: str
    attempts: int
    parked_at: str | None
    body: bytes
    content_type: str
    headers: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        return {"queue": self.worker, "id": self.message_id, "reason": self.reason, "attempts": self.attempts,
                "parked_at": self.parked_at}

    def without_content(self) -> ParkedMessage:
        """For a listing, which shows neither body nor headers: a hundred parked catalog bodies of a
        bulk load held in a process would be half a gigabyte."""
        return replace(self, body=b"", headers={})


@dataclass(frozen=True)
class SettledMessage:
    """A parked message replayed or dropped: whose queue, its id (its body is gone from this process)."""

    worker: str
    message_id: str


class ReplayCutShort(PublishRejected):
    """The broker refused a replay part-way: `settled` went back to their work queues before it; the rest stay parked."""

    def __init__(self, message: str, settled: list[SettledMessage]) -> None:
        super().__init__(message)
        self.settled = settled


def parked_from(worker: str, properties: pika.BasicProperties, body: bytes) -> ParkedMessage:
    headers = dict(properties.headers or {})
    deaths = headers.get("x-death") or [{}]
    broker_death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    # Not x-delivery-count: the parking queue's own, which every listing (a take handed back) moves on.
    attempts = _broker_attempts(broker_death, headers.get(ATTEMPT_HEADER))
    reason = headers.get(PARK_REASON_HEADER) or (
        f"broker: {broker_death.get('reason', 'dead-lettered')} after {_count(attempts)} deliveries" if broker_death
        else "unknown")
    parked_at = headers.get(PARKED_AT_HEADER) or broker_death.get("time")
    if isinstance(parked_at, datetime):  # the broker's x-death time; ours is ISO 8601 text already
        parked_at = parked_at.isoformat()
    return ParkedMessage(worker, properties.message_id or "", _text(reason), _count(attempts),
                         None if parked_at is None else _text(parked_at), body,
                         properties.content_type or "application/json", headers)


def _broker_attempts(death: dict[str, Any], attempt_header: object) -> object:
    """The tries a parked message had: the consumer's count (its attempt header), and for one the
    broker parked past the work queue's delivery limit (a worker died on it each time) the deliveries
    of its last attempt on top: a message back from a retry delay carries the header too."""
    if death.get("reason") != "delivery_limit":
        return 1 if attempt_header is None else attempt_header
    earlier = 0 if attempt_header is None else _count(attempt_header) - 1
    return earlier + CRASH_DELIVERY_LIMIT + 1


def _count(value: object) -> int:
    """A header's count of attempts; 1 when it is not a whole number (anyone can publish any header)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, (int, float, str)):
        return 1
    try:
        return max(int(value), 1)
    except (ValueError, OverflowError):
        return 1


def work_queues(worker: str | None) -> list[WorkQueue]:
    """The queues a command addresses: one worker's, or all.

    A worker's queue is named as the commands show it (`inventory`) or as RabbitMQ and the alerts'
    `queue` label do (`erp-sync.inventory`, its parking queue `erp-sync.inventory.parked`).
    """
    if worker is None:
        return list(WORK_QUEUES.values())
    named = next((queue for key, queue in WORK_QUEUES.items()
                  if worker in (key, queue.name, queue.parking_queue)), None)
    if named is None:
        raise ConfigurationError(f"no queue {worker!r}; the queues are {', '.join(WORK_QUEUES)}")
    return [named]


class DeadLetters:
    """The parking queues of one broker (vhost).

    `wait_s`: how long to wait for another reader to finish before `ParkedBeingRead`.
    """

    def __init__(self, amqp_url: str, wait_s: float = 0.0) -> None:
        self._amqp_url = amqp_url
        self._wait_s = wait_s

    def parked(self, worker: str | None = None, limit: int | None = None) -> list[ParkedMessage]:
        """The first `limit` parked messages (all when None); see `reading`. None past the limit is taken."""
        queues = work_queues(worker)
        with self._reader() as reader:
            return list(reader.each_parked(queues, limit))

    def counted(self, worker: str | None = None, limit: int | None = None) -> tuple[list[ParkedMessage], dict[str, int]]:
        """`parked` without their content (`without_content`), and how many each worker's parking queue
        holds, counted as the sole reader: no other reader holds any of them meanwhile, so the counts
        and the messages agree."""
        queues = work_queues(worker)
        with self._reader() as reader:
            counts = {queue.worker: reader.ready(queue.parking_queue) for queue in WORK_QUEUES.values()}
            return [parked.without_content() for parked in reader.each_parked(queues, limit)], counts

    @contextlib.contextmanager
    def reading(self, worker: str | None = None) -> Iterator[Iterator[ParkedMessage]]:
        """Each parked message in turn, oldest first per queue; none is taken off its queue.

        Each one read is taken and handed back when the block ends, which RabbitMQ counts as a
        delivery. Messages come in batches: stopped early, the block has taken at most as many
        again as were iterated (`parked` with a limit takes none past it).
        """
        queues = work_queues(worker)  # a name that is no queue is told before any wait
        with self._reader() as reader:
            yield reader.each_parked(queues)

    def replay(self, ids: set[str] | None, worker: str | None = None,
               settled: list[SettledMessage] | None = None) -> list[SettledMessage]:
        """Put the parked messages with these ids (all when None) back on their work queues.

        Each one is added to `settled` as it goes back, and the list returned: cut short (Ctrl-C, the
        broker gone), the caller still knows what was done.
        """
        return self._settle(ids, worker, [] if settled is None else settled, replay=True)

    def drop(self, ids: set[str], worker: str | None = None,
             settled: list[SettledMessage] | None = None) -> list[SettledMessage]:
        """Drop the parked messages with these ids for good; the others stay parked. `settled` as `replay`'s."""
        return self._settle(ids, worker, [] if settled is None else settled, replay=False)

    def _settle(self, ids: set[str] | None, worker: str | None, settled: list[SettledMessage], *,
                replay: bool) -> list[SettledMessage]:
        queues = work_queues(worker)
        replays = _Replays(self._amqp_url) if replay else None
        with self._reader() as reader, contextlib.closing(replays) if replays else contextlib.nullcontext():
            for queue in queues:
                for parked, tag in reader.take_all(queue):
                    if ids is not None and parked.message_id not in ids:
                        continue
                    if replays is not None:
                        try:
                            replays.publish(queue, parked)
                        except PublishRejected as exc:
                            raise ReplayCutShort(f"{exc}; it and those after it stay parked", settled) from exc
                    # Settled once its ack is sent (the batch's end): cut short before, it stays parked.
                    reader.ack(queue, tag, functools.partial(settled.append, SettledMessage(parked.worker,
                                                                                            parked.message_id)))
        return settled

    def purge(self, worker: str | None = None) -> dict[str, int]:
        """Drop every parked message; how many each queue held."""
        queues = work_queues(worker)
        with self._reader() as reader:
            return {queue.worker: reader.channel.queue_purge(queue.parking_queue).method.message_count
                    for queue in queues}

    @contextlib.contextmanager
    def _reader(self) -> Iterator[_Reader]:
        connection = blocking_connection(self._amqp_url, "dlq")
        reader: _Reader | None = None
        try:
            reader = _Reader(connection, sole_reader(connection, self._wait_s))
            yield reader
        except pika.exceptions.AMQPError as exc:
            raise BrokerUnavailable(f"RabbitMQ failed during the command: {exc!r}") from exc
        finally:
            try:
                if connection.is_open and reader is not None and reader.channel.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        reader.hand_back()
            finally:
                if connection.is_open:
                    connection.close()


class _Reader:
    """The sole reader's channel, and how many messages each parking queue holds once it hands back
    what it took: as many as were ready when it began taking, less those it acked (only readers take
    parked messages)."""

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self.channel = channel
        self._connection = connection
        self._taking = BatchedTake(connection, channel)
        self._held_after: dict[str, int] = {}

    def ready(self, parking_queue: str) -> int:
        return int(self.channel.queue_declare(parking_queue, passive=True).method.message_count)

    def each_parked(self, queues: list[WorkQueue], limit: int | None = None) -> Iterator[ParkedMessage]:
        """The parked messages of `queues` in turn, the first `limit` of them (all when None)."""
        left = limit
        for queue in queues:
            if left == 0:
                return
            for parked, _ in self.take_all(queue, left):
                yield parked
                if left is not None:
                    left -= 1

    def take_all(self, queue: WorkQueue, limit: int | None = None) -> Iterator[tuple[ParkedMessage, int]]:
        """Each message on the queue's parking queue when the call began (the first `limit`), taken without an ack."""
        waiting = self.ready(queue.parking_queue)
        self._held_after.setdefault(queue.parking_queue, waiting)
        wanted = waiting if limit is None else min(waiting, limit)
        came = 0
        for properties, body, tag in self._taking.take(queue.parking_queue, wanted):
            came += 1
            yield parked_from(queue.worker, properties, body), tag
        # Counted ready but never delivered (purged by hand meanwhile): not to be waited for at the hand-back.
        self._held_after[queue.parking_queue] -= wanted - came

    def ack(self, queue: WorkQueue, tag: int, sent: Callable[[], None]) -> None:
        """Take the message off its parking queue, with the batch's acks; `sent` is called once its ack is."""
        def settled() -> None:
            self._held_after[queue.parking_queue] -= 1
            sent()

        self._taking.ack(tag, settled)

    def hand_back(self) -> None:
        """Every message taken and not acked back on its queue, ready, before the next reader's turn
        (at most HAND_BACK_WAIT_S): a quorum queue takes back thousands over seconds, and a reader let
        in as this one's connection closed counted those back so far ("0 parked" of 20,000)."""
        # The consumer first: still open, it would be handed back what is handed back.
        self._taking.end()
        # basic.nack rather than the close, which RabbitMQ 4.3 counts as a failed delivery against a
        # quorum queue's delivery limit (rabbitmq-server#15387): looks must not add up.
        self.channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        deadline = time.monotonic() + HAND_BACK_WAIT_S
        for parking_queue, held in self._held_after.items():
            while self.ready(parking_queue) < held:
                if time.monotonic() >= deadline:
                    logger.warning("parked messages still being handed back to %s after %g s: a reader may count "
                                   "fewer for a moment", parking_queue, HAND_BACK_WAIT_S)
                    return
                self._connection.sleep(HAND_BACK_POLL_S)


class _Replays:
    """The replays' confirming channel, on a connection of its own opened at the first replay.

    On the reader's connection, pika would read the batch's messages into memory while it waits for
    each confirm; opened at once, it could idle past its heartbeat through a long scan. Under a
    broker's memory or disk alarm a publish waits at most REPLAY_BLOCKED_TIMEOUT_S, not for ever.
    """

    def __init__(self, amqp_url: str) -> None:
        self._amqp_url = amqp_url
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(self, queue: WorkQueue, parked: ParkedMessage) -> None:
        """Put the message back on its work queue as it first arrived, confirmed.

        Raises:
            PublishRejected: no such queue, or it is at its bound.
        """
        if self._channel is None:
            self._connection = blocking_connection(self._amqp_url, "dlq replay",
                                                   blocked_timeout_s=REPLAY_BLOCKED_TIMEOUT_S)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        headers = encodable({key: value for key, value in parked.headers.items() if key not in FAILURE_HEADERS})
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=parked.message_id,
                                          content_type=parked.content_type, headers=headers)
        try:
            self._channel.basic_publish("", queue.name, parked.body, properties, mandatory=True)
        except pika.exceptions.UnroutableError as exc:
            raise PublishRejected(f"RabbitMQ refused the replay of {parked.message_id}: no queue {queue.name} "
                                  "(run `erp-sync migrate`)") from exc
        except pika.exceptions.NackError as exc:
            raise PublishRejected(f"RabbitMQ refused the replay of {parked.message_id}: {queue.name} is at its "
                                  "bound (QUEUE_MAX_LENGTH, QUEUE_MAX_BYTES) until its worker drains it") from exc

    def close(self) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
