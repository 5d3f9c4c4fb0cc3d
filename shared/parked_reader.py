"""One reader of the parking queues at a time, and whether one reads.

A reader (`erp-sync dlq`, the console's parked page) takes each parked message unacked and hands
all back when it ends: what one holds, another would not see, and would call not parked. The
reader holds an exclusive queue, which RabbitMQ removes with its connection however that ends, and
consumes from PARKED_READERS_QUEUE meanwhile: its consumer count tells the parked counts' readers
(/metrics, the console) that the messages ready are not all that is parked.
"""
from __future__ import annotations

import logging
import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from erp_sync.shared.errors import ConfigurationError, ParkedBeingRead
from erp_sync.shared.topology import PARKED_READERS_QUEUE

logger = logging.getLogger(__name__)

READER_LOCK = "erp-sync.dlq.reader"
ACCESS_REFUSED = 403  # AMQP: the user may not declare (configure) that name
NOT_FOUND = 404  # AMQP: no such queue
RESOURCE_LOCKED = 405  # AMQP: an exclusive queue another connection holds
POLL_S = 0.5


def sole_reader(connection: pika.BlockingConnection, wait_s: float) -> BlockingChannel:
    """A channel of the only reader of the parking queues, once no other reader is left.

    Raises:
        ParkedBeingRead: another reader still reads after `wait_s`.
        ConfigurationError: the broker's user may not declare the reader's queue.
    """
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        channel = connection.channel()
        try:
            channel.queue_declare(READER_LOCK, exclusive=True, auto_delete=True, arguments={"x-queue-type": "classic"})
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == ACCESS_REFUSED:
                raise ConfigurationError(f"AMQP_URL's user may not declare the queue {READER_LOCK} (one reader of "
                                         "the parked messages at a time): grant it configure rights on that name, "
                                         f"as on every erp-sync.* queue ({exc.reply_text})") from exc
            if exc.reply_code != RESOURCE_LOCKED:
                raise
        else:
            _announce(connection)
            return channel
        if time.monotonic() >= deadline:
            raise ParkedBeingRead("another `erp-sync dlq` command or the console is reading the parked messages; "
                                  "they are back when it ends: try again then")
        if not told:
            logger.warning("another `erp-sync dlq` command or the console is reading the parked messages; "
                           "waiting up to %.0f s for it to end", wait_s)
            told = True
        connection.sleep(POLL_S)


def _announce(connection: pika.BlockingConnection) -> None:
    """Consume from PARKED_READERS_QUEUE for as long as the connection lasts, on a channel of its own."""
    channel = connection.channel()
    try:
        channel.basic_consume(PARKED_READERS_QUEUE, lambda *_: None, auto_ack=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        # A topology an earlier release declared has no such queue: this read goes unannounced.
        if exc.reply_code != NOT_FOUND:
            raise


def parked_being_read(connection: pika.BlockingConnection) -> bool:
    """Whether a reader holds the parked messages this moment: a count of them now (a passive declare
    counts those ready) misses what it holds."""
    channel = connection.channel()
    try:
        readers = channel.queue_declare(PARKED_READERS_QUEUE, passive=True).method.consumer_count
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return False  # not declared yet: `erp-sync migrate` of this release declares it
        raise
    channel.close()
    return bool(readers)
