"""What the broker's acks, nacks and returns mean for the messages a channel published (both publishers' rule)."""
from __future__ import annotations

from types import SimpleNamespace

import pika
import pika.exceptions
import pytest
from pika import spec

from erp_sync.shared.confirms import ConfirmLedger
from erp_sync.shared.errors import BrokerUnavailable, PublishRejected, QueueFull
from erp_sync.shared.publisher import OutgoingMessage


class Answer:
    def __init__(self) -> None:
        self.outcome: str | BaseException | None = None

    def confirm(self) -> None:
        self.outcome = self.outcome or "confirmed"

    def fail(self, error: BaseException) -> None:
        self.outcome = self.outcome or error


class Channel:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.published: list[str] = []

    def basic_publish(self, _exchange, _routing_key, _body, properties, mandatory) -> None:
        assert mandatory
        if self.refuse:
            raise pika.exceptions.ChannelWrongStateError("closed")
        self.published.append(properties.message_id)


def message(message_id: str) -> OutgoingMessage:
    return OutgoingMessage("erp-sync", "stock.changed", b"{}", message_id)


def published(count: int) -> tuple[ConfirmLedger[Answer], list[Answer]]:
    ledger: ConfirmLedger[Answer] = ConfirmLedger()
    answers = [Answer() for _ in range(count)]
    channel = Channel()
    for number, answer in enumerate(answers, start=1):
        ledger.publish(channel, message(f"m{number}"), answer)  # type: ignore[arg-type]
    return ledger, answers


def frame(method: object) -> SimpleNamespace:
    return SimpleNamespace(method=method)


def test_a_multiple_ack_confirms_every_message_up_to_its_tag_and_no_later_one():
    ledger, answers = published(3)
    ledger.on_confirm(frame(spec.Basic.Ack(delivery_tag=2, multiple=True)))  # type: ignore[arg-type]
    assert [answer.outcome for answer in answers] == ["confirmed", "confirmed", None]


def test_a_nack_is_a_full_queue_and_an_ack_after_a_return_is_a_message_no_queue_took():
    ledger, answers = published(2)
    ledger.on_return(None, None, pika.BasicProperties(message_id="m2"), b"{}")  # type: ignore[arg-type]
    ledger.on_confirm(frame(spec.Basic.Nack(delivery_tag=1)))  # type: ignore[arg-type]
    ledger.on_confirm(frame(spec.Basic.Ack(delivery_tag=2)))  # type: ignore[arg-type]
    assert isinstance(answers[0].outcome, QueueFull)
    assert isinstance(answers[1].outcome, PublishRejected)


def test_a_lost_channel_fails_what_awaits_its_answer_and_a_refused_publish_fails_at_once():
    ledger, answers = published(2)
    ledger.on_confirm(frame(spec.Basic.Ack(delivery_tag=1)))  # type: ignore[arg-type]
    ledger.fail_all(ConnectionResetError("gone"))
    assert answers[0].outcome == "confirmed"
    assert isinstance(answers[1].outcome, BrokerUnavailable) and "gone" in str(answers[1].outcome)

    refused = Answer()
    ledger.publish(Channel(refuse=True), message("m3"), refused)  # type: ignore[arg-type]
    with pytest.raises(BrokerUnavailable, match="publish failed"):
        raise refused.outcome  # type: ignore[misc]


class MarshallingChannel(Channel):
    """Marshals the message's frames as pika's channel does before it sends a byte."""

    def basic_publish(self, exchange, routing_key, body, properties, mandatory) -> None:
        pika.frame.Method(1, spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)).marshal()
        pika.frame.Header(1, len(body), properties).marshal()
        super().basic_publish(exchange, routing_key, body, properties, mandatory)


@pytest.mark.parametrize("headers", [{"h": 10**30}, {"h": float("nan")}, {"h" * 300: 1}],
                         ids=["an integer beyond 64 bits", "a float", "a name of 300 bytes"])
def test_a_message_amqp_cannot_encode_fails_alone_and_the_next_keeps_its_tag(headers):
    # given a message with a header pika cannot encode (as a copied header may be), then a plain one
    ledger: ConfirmLedger[Answer] = ConfirmLedger()
    channel, unencodable, plain = MarshallingChannel(), Answer(), Answer()
    ledger.publish(channel, OutgoingMessage("erp-sync", "stock.changed", b"{}", "m1", headers=headers),  # type: ignore[arg-type]
                   unencodable)
    ledger.publish(channel, message("m2"), plain)  # type: ignore[arg-type]

    # when the broker acks its first delivery tag
    ledger.on_confirm(frame(spec.Basic.Ack(delivery_tag=1, multiple=False)))  # type: ignore[arg-type]

    # then the first failed as unencodable without being sent, and the ack is the plain message's
    assert isinstance(unencodable.outcome, PublishRejected) and "cannot be encoded" in str(unencodable.outcome)
    assert channel.published == ["m2"] and plain.outcome == "confirmed"
