"""What RabbitMQ's confirms and returns say of the messages one channel published: one rule for both publishers.

The threaded publisher (shared/publisher.py) and the event loop's (shared/async_publisher.py)
differ in how a caller waits for the answer, not in what the answer is: an ack is a confirm, a
nack is QueueFull (reject-publish overflow), an ack after a return is PublishRejected (no queue
took it), and a channel lost before its answer is BrokerUnavailable.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pika
import pika.exceptions
from pika import spec
from pika.channel import Channel

from erp_sync.shared.errors import BrokerUnavailable, PublishRejected, QueueFull

if TYPE_CHECKING:
    from erp_sync.shared.publisher import OutgoingMessage


class Outcome(Protocol):
    """Where a publisher's caller finds the broker's answer; the first answer counts."""

    def confirm(self) -> None: ...

    def fail(self, error: BaseException) -> None: ...


O = TypeVar("O", bound=Outcome)
# What pika raises for a message it cannot marshal (a header value beyond AMQP's types).
UNENCODABLE = (pika.exceptions.UnsupportedAMQPFieldException, pika.exceptions.ShortStringTooLong,
               struct.error, TypeError, ValueError, OverflowError)


@dataclass
class _Awaiting(Generic[O]):
    outcome: O
    message_id: str
    returned: bool = False


class ConfirmLedger(Generic[O]):
    """The messages a confirming channel published that RabbitMQ has not answered yet, by delivery tag.

    One per channel (its delivery tags start at 1), used on that channel's I/O thread or loop only.
    """

    def __init__(self) -> None:
        self._awaiting: dict[int, _Awaiting[O]] = {}
        self._last_tag = 0

    def publish(self, channel: Channel, message: OutgoingMessage, outcome: O) -> None:
        """Publish `message` on `channel`; `outcome` gets the broker's answer, or the failure to send it."""
        self._last_tag += 1
        self._awaiting[self._last_tag] = _Awaiting(outcome, message.message_id)
        try:
            # mandatory: a message no queue takes comes back instead of vanishing after the ack.
            channel.basic_publish(
                message.exchange, message.routing_key, message.body, message.properties(), mandatory=True
            )
        except UNENCODABLE as exc:  # before AMQPError: two of them are pika's
            # pika marshals a message's frames before it sends any: nothing went out, so the
            # broker's count of delivery tags did not move either (and the I/O thread lives on).
            self._awaiting.pop(self._last_tag, None)
            self._last_tag -= 1
            outcome.fail(PublishRejected(f"message {message.message_id} cannot be encoded in AMQP: {exc}"))
        except pika.exceptions.AMQPError as exc:
            self._awaiting.pop(self._last_tag, None)
            outcome.fail(BrokerUnavailable(f"publish failed: {exc}"))

    def on_return(
        self, _channel: Channel, _method: spec.Basic.Return, properties: pika.BasicProperties, _body: bytes
    ) -> None:
        """The channel's return callback."""
        # A return precedes the ack of the same message, so the oldest awaiting one with its id is it.
        for item in self._awaiting.values():
            if item.message_id == properties.message_id and not item.returned:
                item.returned = True
                return

    def on_confirm(self, frame: pika.frame.Method[Any]) -> None:
        """The channel's confirm callback: an ack or a nack, of one message or of all up to its tag."""
        method = frame.method
        acked = isinstance(method, spec.Basic.Ack)
        tags = [tag for tag in self._awaiting if tag <= method.delivery_tag] if method.multiple else [method.delivery_tag]
        for tag in tags:
            item = self._awaiting.pop(tag, None)
            if item is None:
                continue
            if not acked:
                item.outcome.fail(QueueFull(f"broker refused message {item.message_id}: queue full"))
            elif item.returned:
                item.outcome.fail(PublishRejected(f"no queue is bound for message {item.message_id}"))
            else:
                item.outcome.confirm()

    def fail_all(self, reason: BaseException) -> None:
        """The channel is gone: every message still awaiting its answer failed with it."""
        awaiting, self._awaiting = self._awaiting, {}
        for item in awaiting.values():
            item.outcome.fail(BrokerUnavailable(f"connection lost before confirm: {reason}{_hint(reason)}"))


def _hint(reason: BaseException) -> str:
    """What to do when the channel closed because an exchange is missing: publishing again never helps."""
    if isinstance(reason, pika.exceptions.ChannelClosedByBroker) and reason.reply_code == spec.NOT_FOUND:
        return " (if the exchange is erp-sync's, its topology is missing here: run `erp-sync migrate` against this vhost)"
    return ""
