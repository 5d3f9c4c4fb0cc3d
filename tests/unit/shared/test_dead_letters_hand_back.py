"""A reader of the parked messages ends its turn only once what it handed back is ready again."""
from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pika

from erp_sync.shared.dead_letters import _Reader
from erp_sync.shared.topology import WORK_QUEUES

QUEUE = WORK_QUEUES["inventory"]


class Broker:
    """A parking queue of `ready` messages that takes back what was handed back a few at a time."""

    def __init__(self, ready: int, back_per_look: int) -> None:
        self.ready, self.taken, self.back_per_look = ready, 0, back_per_look
        self.slept = 0

    def queue_declare(self, queue: str, passive: bool) -> SimpleNamespace:
        if self.taken and self.handed_back:
            back = min(self.back_per_look, self.taken)
            self.ready, self.taken = self.ready + back, self.taken - back
        return SimpleNamespace(method=SimpleNamespace(message_count=self.ready))

    def basic_qos(self, prefetch_count: int) -> None:
        self.prefetch = prefetch_count

    def basic_consume(self, queue: str, on_message: Callable[..., None], auto_ack: bool, consumer_tag: str) -> str:
        self.on_message = on_message
        return consumer_tag

    def process_data_events(self, time_limit: float) -> None:
        for _ in range(self.prefetch):
            self.ready, self.taken, self.prefetch = self.ready - 1, self.taken + 1, self.prefetch - 1
            self.on_message(self, SimpleNamespace(delivery_tag=self.taken), pika.BasicProperties(message_id="m"), b"{}")

    def basic_cancel(self, consumer_tag: str) -> None:
        self.prefetch = 0

    def basic_ack(self, tag: int) -> None:
        self.taken -= 1

    def basic_nack(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        self.handed_back = True

    def sleep(self, seconds: float) -> None:
        self.slept += 1

    handed_back = False


def test_the_turn_ends_once_every_message_handed_back_is_ready_again():
    # given a reader that took all 1,000 parked messages and acked (replayed) one
    broker = Broker(ready=1_000, back_per_look=100)
    reader = _Reader(broker, broker)  # type: ignore[arg-type]
    taken = list(reader.take_all(QUEUE))
    reader.ack(QUEUE, taken[0][1], lambda: None)

    # when it hands them back, the queue taking them back 100 at a time
    reader.hand_back()

    # then it waited until all 999 were ready again: the next reader counts them all
    assert broker.ready == 999 and broker.taken == 0 and broker.slept >= 9
