"""Publishing to RabbitMQ with publisher confirms from coroutines, on the caller's own event loop.

The threaded publisher (shared/publisher.py) serves code running on threads: each publish crosses
to its I/O thread and each confirm crosses back. A server whose requests already run on an
asyncio loop (the door's webhook, ingress/door.py) publishes here instead: pika's asyncio
adapter drives the connection on that same loop, so a publish and its confirm never leave it.
Same outcomes as the threaded one (shared/confirms.py): a nack is QueueFull, a returned message
PublishRejected, a lost connection or no confirm in time BrokerUnavailable.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Unpack

import pika
import pika.exceptions
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from erp_sync.shared.confirms import ConfirmLedger
from erp_sync.shared.errors import BrokerUnavailable, ConfirmTimeout
from erp_sync.shared.publisher import OutgoingMessage, PublisherOptions, Timeouts, log_level_of

logger = logging.getLogger(__name__)


class _Answer:
    """The broker's answer to one message, as a future on the loop."""

    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[None] = loop.create_future()

    def confirm(self) -> None:
        _resolve(self.future)

    def fail(self, error: BaseException) -> None:
        _fail(self.future, error)


class _OneWriteConnection(AsyncioConnection):  # type: ignore[misc]  # pika ships no types for it
    """pika's asyncio connection, handing each message's frames to the socket as one write.

    pika buffers a message as three frames (method, header, body) and sends each with a send()
    of its own: two in three of a publish's system calls on the door's loop, and three segments
    for RabbitMQ's reader to wake up for instead of one. The bytes on the wire are the same.
    """

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        if len(marshaled_frames) < 2:
            super()._output_marshaled_frames(marshaled_frames)
            return
        data = b"".join(marshaled_frames)
        self.bytes_sent += len(data)
        self.frames_sent += len(marshaled_frames)
        self._adapter_emit_data(data)


class _LoopLink:
    """One connection and its confirming channel on one loop; dies whole and is replaced whole."""

    def __init__(self, parameters: pika.URLParameters, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ledger: ConfirmLedger[_Answer] = ConfirmLedger()
        self._channel: Channel | None = None
        self.alive = True
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._connection = _OneWriteConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
            custom_ioloop=loop,
        )

    def _on_connection_open(self, connection: AsyncioConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._ledger.on_return)
        channel.confirm_delivery(self._ledger.on_confirm, callback=lambda _frame: _resolve(self.ready))

    def _on_open_error(self, _connection: AsyncioConnection, error: BaseException) -> None:
        self.alive = False
        _fail(self.ready, BrokerUnavailable(f"cannot connect to RabbitMQ: {error}"))
        _resolve(self.closed)

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        logger.log(log_level_of(reason), "publishing channel closed: %s", reason)
        self._fail_all(reason)
        if self._connection.is_open:
            self._connection.close()

    def _on_connection_closed(self, _connection: AsyncioConnection, reason: BaseException) -> None:
        logger.log(log_level_of(reason), "publishing connection closed: %s", reason)
        self._fail_all(reason)
        _resolve(self.closed)

    def _fail_all(self, reason: BaseException) -> None:
        self.alive = False
        _fail(self.ready, BrokerUnavailable(f"the RabbitMQ connection closed while it was being set up: {reason}"))
        self._ledger.fail_all(reason)

    def send(self, message: OutgoingMessage) -> asyncio.Future[None]:
        """Hand `message` to the connection; the future holds the broker's answer."""
        answer = _Answer(self._loop)
        if not self.alive or self._channel is None or not self._channel.is_open:
            answer.fail(BrokerUnavailable("publishing channel is closed"))
        else:
            self._ledger.publish(self._channel, message, answer)
        return answer.future

    def close(self) -> None:
        self.alive = False
        if self._connection.is_open:
            self._connection.close()
        elif not self._connection.is_closed and not self._connection.is_closing:
            # Still opening: pika lets an opening connection be aborted by closing it.
            try:
                self._connection.close()
            except pika.exceptions.ConnectionWrongStateError:
                _resolve(self.closed)


class LoopPublisher(PublisherOptions):
    """Publish persistent messages from coroutines on one event loop; return once RabbitMQ confirmed them."""

    def __init__(self, amqp_url: str, **options: Unpack[Timeouts]) -> None:
        super().__init__(amqp_url, **options)
        self._link: _LoopLink | None = None
        self._connecting: asyncio.Future[_LoopLink] | None = None

    async def publish(self, message: OutgoingMessage) -> None:
        """Publish and wait for the confirm.

        Raises:
            BrokerUnavailable: no connection, connection lost, or no confirm in time (ConfirmTimeout).
            PublishRejected: the broker nacked it (QueueFull) or no queue took it.
        """
        link = self._link
        if link is None or not link.alive:
            link = await self._connected_link()
        outcome = link.send(message)
        # One timer per message: cheaper than asyncio.timeout's context and task bookkeeping.
        timer = asyncio.get_running_loop().call_later(self._confirm_timeout_s, _time_out, outcome, message.message_id)
        try:
            await outcome
        finally:
            timer.cancel()

    async def _connected_link(self) -> _LoopLink:
        if self._connecting is not None:
            # Every caller that finds no link waits on the one attempt under way.
            return await asyncio.shield(self._connecting)
        if time.monotonic() - self._last_failure < self._reconnect_interval_s:
            raise BrokerUnavailable("RabbitMQ was unreachable a moment ago")
        loop = asyncio.get_running_loop()
        self._connecting = attempt = loop.create_future()
        try:
            link = _LoopLink(self._parameters, loop)
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await link.ready
            except TimeoutError:
                link.close()
                raise BrokerUnavailable("connecting to RabbitMQ timed out") from None
        except (BrokerUnavailable, pika.exceptions.AMQPError, OSError) as exc:
            self._last_failure = time.monotonic()
            error = (exc if isinstance(exc, BrokerUnavailable)
                     else BrokerUnavailable(f"cannot connect to RabbitMQ: {exc}"))
            _fail(attempt, error)
            if error is exc:
                raise
            raise error from exc
        finally:
            self._connecting = None
        self._link = link
        attempt.set_result(link)
        return link

    async def close(self) -> None:
        """Close the connection and wait (a little) until it is closed."""
        link, self._link = self._link, None
        if link is None:
            return
        link.close()
        try:
            async with asyncio.timeout(5):
                await link.closed
        except TimeoutError:
            logger.warning("the publishing connection did not close within 5 s")


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
        future.exception()  # a failure nobody awaits (a connect given up on) is not worth a warning


def _time_out(outcome: asyncio.Future[None], message_id: str) -> None:
    _fail(outcome, ConfirmTimeout(f"no confirm for message {message_id} in time"))
