"""Publishing to RabbitMQ with publisher confirms from coroutines, on the caller's own event loop.

The threaded publisher (shared/publisher.py) serves code running on threads: each publish crosses
to its I/O thread and each confirm crosses back. A server whose requests already run on an
asyncio loop (the door's webhook, ingress/door.py) publishes here instead: pika's asyncio
adapter drives the connection on that same loop, so a publish and its confirm never leave it.
Same outcomes as the threaded one: a nack is QueueFull, a returned message PublishRejected, a
lost connection or no confirm in time BrokerUnavailable.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika import spec
from pika.adapters.asyncio_connection import AsyncioConnection
from pika.channel import Channel

from erp_sync.shared.errors import BrokerUnavailable, ConfirmTimeout, PublishRejected, QueueFull
from erp_sync.shared.publisher import OutgoingMessage, log_level_of

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    outcome: asyncio.Future[None]
    message_id: str
    returned: bool = False


class _LoopLink:
    """One connection and its confirming channel on one loop; dies whole and is replaced whole."""

    def __init__(self, parameters: pika.URLParameters, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[int, _Pending] = {}
        self._last_tag = 0
        self._channel: Channel | None = None
        self.alive = True
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._connection = AsyncioConnection(
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
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm, callback=lambda _frame: _resolve(self.ready))

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
        pending, self._pending = self._pending, {}
        for item in pending.values():
            _fail(item.outcome, BrokerUnavailable(f"connection lost before confirm: {reason}"))

    def _on_return(
        self, _channel: Channel, _method: spec.Basic.Return, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        # A return precedes the ack of the same message, so the oldest pending one with its id is it.
        for item in self._pending.values():
            if item.message_id == properties.message_id and not item.returned:
                item.returned = True
                return

    def _on_confirm(self, frame: pika.frame.Method[Any]) -> None:
        method = frame.method
        acked = isinstance(method, spec.Basic.Ack)
        if method.multiple:
            tags = [tag for tag in self._pending if tag <= method.delivery_tag]
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            item = self._pending.pop(tag, None)
            if item is None:
                continue
            if not acked:
                # With reject-publish overflow a nack means the queue is at its bound.
                _fail(item.outcome, QueueFull(f"broker refused message {item.message_id}: queue full"))
            elif item.returned:
                _fail(item.outcome, PublishRejected(f"no queue is bound for message {item.message_id}"))
            else:
                _resolve(item.outcome)

    def send(self, message: OutgoingMessage) -> asyncio.Future[None]:
        """Hand `message` to the connection; the future holds the broker's answer."""
        outcome: asyncio.Future[None] = self._loop.create_future()
        if not self.alive or self._channel is None or not self._channel.is_open:
            outcome.set_exception(BrokerUnavailable("publishing channel is closed"))
            return outcome
        self._last_tag += 1
        self._pending[self._last_tag] = _Pending(outcome, message.message_id)
        try:
            # mandatory: a message no queue takes comes back instead of vanishing after the ack.
            self._channel.basic_publish(
                message.exchange, message.routing_key, message.body, message.properties(), mandatory=True
            )
        except pika.exceptions.AMQPError as exc:
            self._pending.pop(self._last_tag, None)
            outcome.set_exception(BrokerUnavailable(f"publish failed: {exc}"))
        return outcome

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


class LoopPublisher:
    """Publish persistent messages from coroutines on one event loop; return once RabbitMQ confirmed them."""

    def __init__(
        self,
        amqp_url: str,
        *,
        confirm_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        reconnect_interval_s: float = 0.5,
    ) -> None:
        self._parameters = pika.URLParameters(amqp_url)
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = connect_timeout_s
        self._parameters.client_properties = {"connection_name": "erp-sync publisher"}
        self._confirm_timeout_s = confirm_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._link: _LoopLink | None = None
        self._connecting: asyncio.Future[_LoopLink] | None = None
        self._last_failure = 0.0

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
