"""Publishing to RabbitMQ with publisher confirms, from any number of threads at once.

One connection per process, driven by an I/O thread of its own, keeps a window of unconfirmed
messages for all in-flight callers; each caller waits only for its own confirm. So concurrent
requests share confirm round trips instead of paying one each in turn.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import pika
import pika.data
import pika.exceptions
from pika.channel import Channel

from erp_sync.shared.amqp_url import amqp_parameters
from erp_sync.shared.confirms import UNENCODABLE, ConfirmLedger
from erp_sync.shared.errors import BrokerUnavailable, ConfirmTimeout, PublishRejected, QueueFull

logger = logging.getLogger(__name__)

# Messages in flight per wait: bounds the broker's and this process's unconfirmed backlog, and
# gives every window the whole confirm timeout however long the list is.
CONFIRM_WINDOW = 1_000


@dataclass(frozen=True)
class OutgoingMessage:
    """A persistent message and where it goes."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: dict[str, Any] = field(default_factory=dict)

    def properties(self) -> pika.BasicProperties:
        return pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=self.content_type,
            message_id=self.message_id,
            timestamp=int(time.time()),
            headers=self.headers or None,
        )


class _Confirmation:
    """One message's outcome: set once by the I/O thread, waited for by the caller.

    A bare lock, held until the outcome is known, costs a fraction of a `Future`'s condition
    variable, and the ingress makes one per request.
    """

    __slots__ = ("_unresolved", "_error", "_resolved")

    def __init__(self) -> None:
        self._unresolved = threading.Lock()
        self._unresolved.acquire()
        self._error: BaseException | None = None
        self._resolved = False

    def confirm(self) -> None:
        self._resolve(None)

    def fail(self, error: BaseException) -> None:
        self._resolve(error)

    def _resolve(self, error: BaseException | None) -> None:
        # The first outcome counts: a channel that closes inside basic_publish fails the message
        # from its close callback before the publish's own error handler gets to it.
        if self._resolved:
            return
        self._resolved = True
        self._error = error
        self._unresolved.release()

    def wait(self, timeout_s: float) -> bool:
        """False if no outcome came in time; raises the failure if there was one."""
        if not self._unresolved.acquire(timeout=timeout_s):
            return False
        self._unresolved.release()  # so that waiting again returns at once
        if self._error is not None:
            raise self._error
        return True


class _Link:
    """One connection and its confirming channel; dies whole and is replaced whole."""

    def __init__(self, parameters: pika.URLParameters, connect_timeout_s: float) -> None:
        self._ledger: ConfirmLedger[_Confirmation] = ConfirmLedger()
        # Messages handed over by callers, published by the I/O thread. Every wakeup of that
        # thread is a socket write and a GIL handoff, so one wakeup serves all that queued up.
        self._outbox: deque[tuple[OutgoingMessage, _Confirmation]] = deque()
        self._wake_lock = threading.Lock()
        self._wake_pending = False
        self._ready = threading.Event()
        self._open_error: BaseException | None = None
        self.alive = True
        self._channel: Channel | None = None
        self._connection = pika.SelectConnection(
            parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)
        self._thread.start()
        if not self._ready.wait(connect_timeout_s):
            self.close()
            raise BrokerUnavailable("connecting to RabbitMQ timed out")
        if self._open_error is not None:
            raise BrokerUnavailable(f"cannot connect to RabbitMQ: {self._open_error!r}") from self._open_error
        if not self.alive:
            # Closed between opening and confirm mode: hand back nothing rather than a dead link.
            raise BrokerUnavailable("the RabbitMQ connection closed while it was being set up")

    def _run(self) -> None:
        self._connection.ioloop.start()

    # --- callbacks, all on the I/O thread ---

    def _on_connection_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._ledger.on_return)
        channel.confirm_delivery(self._ledger.on_confirm, callback=lambda _frame: self._ready.set())

    def _on_open_error(self, connection: pika.SelectConnection, error: BaseException) -> None:
        self._open_error = error
        self.alive = False
        self._ready.set()
        connection.ioloop.stop()

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        logger.log(log_level_of(reason), "publishing channel closed: %s", reason)
        self._fail_all(reason)
        if self._connection.is_open:
            self._connection.close()

    def _on_connection_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        logger.log(log_level_of(reason), "publishing connection closed: %s", reason)
        self._fail_all(reason)
        connection.ioloop.stop()

    def _fail_all(self, reason: BaseException) -> None:
        self.alive = False
        self._ready.set()
        self._ledger.fail_all(reason)
        self._fail_outbox()

    def _fail_outbox(self) -> None:
        while self._outbox:
            try:
                _message, confirmation = self._outbox.popleft()
            except IndexError:
                return
            confirmation.fail(BrokerUnavailable("the publishing connection is gone"))

    def _drain_outbox(self) -> None:
        # Cleared before draining: a message queued after this line either finds the flag down and
        # wakes the loop again, or is still in the outbox for the loop below.
        with self._wake_lock:
            self._wake_pending = False
        while True:
            try:
                message, confirmation = self._outbox.popleft()
            except IndexError:  # empty, or emptied by a caller failing what a dead link left
                return
            self._publish_on_loop(message, confirmation)

    def _publish_on_loop(self, message: OutgoingMessage, confirmation: _Confirmation) -> None:
        if not self.alive or self._channel is None or not self._channel.is_open:
            confirmation.fail(BrokerUnavailable("publishing channel is closed"))
            return
        self._ledger.publish(self._channel, message, confirmation)

    # --- called from any thread ---

    def submit(self, message: OutgoingMessage) -> _Confirmation:
        confirmation = _Confirmation()
        self._outbox.append((message, confirmation))
        with self._wake_lock:
            wake = not self._wake_pending
            self._wake_pending = True
        if wake:
            try:
                self._connection.ioloop.add_callback_threadsafe(self._drain_outbox)
            except (pika.exceptions.AMQPError, RuntimeError, AttributeError) as exc:
                self.alive = False
                self._fail_outbox()
                raise BrokerUnavailable(f"publisher connection is gone: {exc}") from exc
        if not self.alive:
            # The loop may have stopped before it could take this message (and a wakeup asked for
            # before it stopped never comes): nobody else will fail it.
            self._fail_outbox()
        return confirmation

    def close(self) -> None:
        self.alive = False
        try:
            self._connection.ioloop.add_callback_threadsafe(self._close_on_loop)
        except (pika.exceptions.AMQPError, RuntimeError, AttributeError):
            return
        self._thread.join(timeout=5)

    def _close_on_loop(self) -> None:
        if self._connection.is_open:
            self._connection.close()
        elif self._connection.is_closed:
            self._connection.ioloop.stop()


class Timeouts(TypedDict, total=False):
    confirm_timeout_s: float
    connect_timeout_s: float
    reconnect_interval_s: float


class PublisherOptions:
    """What every publisher is told: where RabbitMQ is, and how long a confirm and a connect may take."""

    def __init__(
        self,
        amqp_url: str,
        *,
        confirm_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        reconnect_interval_s: float = 0.5,
    ) -> None:
        self._parameters = amqp_parameters(amqp_url)
        self._parameters.connection_attempts = 1
        self._parameters.socket_timeout = connect_timeout_s
        self._parameters.client_properties = {"connection_name": "erp-sync publisher"}
        self._confirm_timeout_s = confirm_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._last_failure = 0.0


class ConfirmingPublisher(PublisherOptions):
    """Publish persistent messages and return only once RabbitMQ confirmed them."""

    def __init__(self, amqp_url: str, **options: Unpack[Timeouts]) -> None:
        super().__init__(amqp_url, **options)
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._pid = os.getpid()

    def publish(self, message: OutgoingMessage, timeout_s: float | None = None) -> None:
        """Publish and wait for the confirm.

        Raises:
            BrokerUnavailable: no connection, connection lost, or no confirm in time.
            PublishRejected: the broker nacked it or no queue took it.
        """
        self.publish_all([message], timeout_s)

    def publish_all(
        self, messages: Sequence[OutgoingMessage], timeout_s: float | None = None, *, patient: bool = False
    ) -> None:
        """Publish all of them, `CONFIRM_WINDOW` at a time, and return once RabbitMQ confirmed every one.

        One confirm round trip per window instead of one per message. Each window has the timeout
        to itself, so a long list is never cut short by the time the first windows took. A
        `patient` caller (a worker publishing follow-ups) keeps waiting while the connection
        lives: a slow confirm is not a lost connection.

        Raises:
            BrokerUnavailable: no connection, or connection lost before the confirms.
            ConfirmTimeout: not patient, and no confirm in time though the connection lives.
            PublishRejected: the broker nacked one (QueueFull) or no queue took it.
        """
        for _message, error in self._publish_windows(messages, timeout_s, lambda: patient):
            raise error

    def publish_what_fits(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> list[OutgoingMessage]:
        """Publish patiently (until `stop` is set); return the messages refused as their queue is full.

        Raises as `publish_all` does for anything but QueueFull; ConfirmTimeout once stopped.
        """
        refused: list[OutgoingMessage] = []
        patient = (lambda: True) if stop is None else (lambda: not stop.is_set())
        for message, error in self._publish_windows(messages, timeout_s, patient):
            if not isinstance(error, QueueFull):
                raise error
            refused.append(message)
        return refused

    def _publish_windows(
        self, messages: Sequence[OutgoingMessage], timeout_s: float | None, patient: Callable[[], bool]
    ) -> Iterator[tuple[OutgoingMessage, PublishRejected]]:
        """Yield each message the broker refused, with why; raise if the connection fails."""
        timeout_s = timeout_s or self._confirm_timeout_s
        for start in range(0, len(messages), CONFIRM_WINDOW):
            link = self._connected_link()
            window = [(message, link.submit(message)) for message in messages[start:start + CONFIRM_WINDOW]]
            deadline = time.monotonic() + timeout_s
            for message, confirmation in window:
                try:
                    while not confirmation.wait(max(0.0, deadline - time.monotonic())):
                        if not link.alive:
                            raise BrokerUnavailable(f"connection lost before the confirm of {message.message_id}")
                        if not patient():
                            raise ConfirmTimeout(f"no confirm for message {message.message_id} in time")
                        logger.warning("no confirm for message %s after %.1f s; the connection is alive, "
                                       "still waiting", message.message_id, timeout_s)
                        deadline = time.monotonic() + timeout_s
                except PublishRejected as exc:
                    yield message, exc

    def ensure_connected(self) -> None:
        """Connect now if not connected; raises BrokerUnavailable if that fails."""
        self._connected_link()

    def _connected_link(self) -> _Link:
        link = self._link
        if link is not None and link.alive and self._pid == os.getpid():
            return link
        with self._lock:
            if self._pid != os.getpid():
                # A forked child must never share its parent's socket.
                self._pid, self._link = os.getpid(), None
            if self._link is not None and self._link.alive:
                return self._link
            if time.monotonic() - self._last_failure < self._reconnect_interval_s:
                raise BrokerUnavailable("RabbitMQ was unreachable a moment ago")
            try:
                self._link = _Link(self._parameters, self._connect_timeout_s)
            except BrokerUnavailable:
                self._last_failure = time.monotonic()
                self._link = None
                raise
            return self._link

    def close(self) -> None:
        with self._lock:
            if self._link is not None:
                self._link.close()
                self._link = None


def log_level_of(reason: BaseException) -> int:
    """A close we asked for is routine; one the broker or the network made is news."""
    closed_by_us = (pika.exceptions.ChannelClosedByClient, pika.exceptions.ConnectionClosedByClient)
    return logging.DEBUG if isinstance(reason, closed_by_us) else logging.WARNING


def encodable(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers, with each value AMQP cannot carry replaced by its repr: a message's headers, copied
    onto its retry or its parking, hold whatever its publisher sent, and pika decodes some values
    (a double of 1e30 as an integer) that it cannot encode again."""
    copied: dict[str, Any] = {}
    for name, value in headers.items():
        try:
            pika.data.encode_value([], value)
        except UNENCODABLE:
            value = repr(value)[:200]
        copied[name] = value
    return copied
