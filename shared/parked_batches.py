"""Taking a parking queue's messages unacked in consumer batches: a round trip a batch, not a message.

`basic_get` on a quorum queue is a round trip and a Raft command for each message: 20,000 parked
took 27-44 s to read. A consumer whose prefetch is the batch's size brings the whole batch, then
brings nothing more (nothing is acked while it is open), so a batch takes exactly the messages
asked for. Batches double from one, so a reader that stops early has taken at most as many again
as it read, and stay few: RabbitMQ 3.10 hands back the messages of more than 32 consumers of one
queue out of order (in order up to 32, about 1.1 million messages).
pika reads at most about 100 KB from the socket a call, and is only called when the batch in hand
is used up: whatever a batch's size, the process holds about one body at a time.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from erp_sync.shared.topology import AMQP_SHORT_MAX

logger = logging.getLogger(__name__)

FIRST_BATCH = 1
CONSUMER_TAG = "erp-sync.dlq.batch"
# The reader alone takes parked messages, so every one counted ready is there to come.
DELIVERY_WAIT_S = 30.0

Taken = tuple[pika.BasicProperties, bytes, int]


class BatchedTake:
    """One channel's open consumer, the deliveries it still owes, and the acks held back until it is cancelled."""

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self._connection = connection
        self._channel = channel
        self._arrived: deque[Taken] = deque()
        self._consumer: str | None = None
        self._owed = 0
        self._keeping = True
        self._held_acks: list[tuple[int, Callable[[], None]]] = []
        self._opened = 0

    @property
    def bodies_in_hand(self) -> int:
        """Messages delivered and not yet read: what the process holds of the queue."""
        return len(self._arrived)

    def take(self, queue: str, count: int) -> Iterator[Taken]:
        """The first `count` messages of `queue`, oldest first, unacked: fewer if they stop coming."""
        batch = FIRST_BATCH
        while count > 0:
            size = min(batch, count, AMQP_SHORT_MAX)
            self._open(queue, size)
            for _ in range(size):
                delivered = self._next()
                if delivered is None:
                    logger.warning("%s brought no message for %g s of %d counted ready: reading it stops here",
                                   queue, DELIVERY_WAIT_S, count)
                    self._owed = 0  # what did not come in that long is not coming: no second wait in `end`
                    self.end()
                    return
                yield delivered
            self.end()
            count -= size
            batch *= 2

    def ack(self, tag: int, sent: Callable[[], None]) -> None:
        """Ack once the consumer is cancelled, then call `sent`: an ack frees a place in its prefetch,
        which it would fill with a message past those asked for. Until then the message is still
        parked: a connection lost meanwhile leaves it there (a replay of one already applied
        changes nothing), and `sent` is never called for it."""
        self._held_acks.append((tag, sent))

    def end(self) -> None:
        """Cancel the open consumer once it has brought all it owes, then send the held acks.

        Cancelled sooner, what it still brings pika rejects one by one, and RabbitMQ puts those
        before the others handed back: the next reader would not read oldest first. What it brings
        now is counted, not kept: the basic.nack of the hand-back returns it unread.
        """
        consumer, self._consumer = self._consumer, None  # interrupted, a second `end` cancels nothing twice
        if consumer is not None:
            self._keeping = False
            self._arrived.clear()
            deadline = time.monotonic() + DELIVERY_WAIT_S
            while self._owed and time.monotonic() < deadline:
                self._connection.process_data_events(time_limit=deadline - time.monotonic())
            self._channel.basic_cancel(consumer)
        acks, self._held_acks = self._held_acks, []  # interrupted, none is sent twice
        for tag, sent in acks:
            self._channel.basic_ack(tag)
            sent()

    def _open(self, queue: str, size: int) -> None:
        self._channel.basic_qos(prefetch_count=size)
        self._owed = size
        self._keeping = True
        self._opened += 1
        # RabbitMQ hands back a nack's messages consumer by consumer in the order of their tags: tags
        # that sort as the batches came keep the next reader's order oldest first.
        self._consumer = self._channel.basic_consume(queue, self._on_delivery, auto_ack=False,
                                                     consumer_tag=f"{CONSUMER_TAG}.{self._opened:06d}")

    def _on_delivery(self, _channel: BlockingChannel, method: Basic.Deliver, properties: pika.BasicProperties,
                     body: bytes) -> None:
        self._owed -= 1
        if self._keeping:
            self._arrived.append((properties, body, int(method.delivery_tag)))

    def _next(self) -> Taken | None:
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while not self._arrived:
            left = deadline - time.monotonic()
            if left <= 0 or not self._owed:
                return None
            self._connection.process_data_events(time_limit=left)
        return self._arrived.popleft()
