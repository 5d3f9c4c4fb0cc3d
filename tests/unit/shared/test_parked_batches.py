"""Taking parked messages in consumer batches: acks told only once sent, no bodies kept past a stop, no wait for what never comes."""
from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pika

from erp_sync.shared import dead_letters, parked_batches
from erp_sync.shared.parked_batches import BatchedTake
from erp_sync.shared.topology import WORK_QUEUES

QUEUE = WORK_QUEUES["inventory"]


class Queue:
    """A parking queue whose consumer is handed one message a round of the connection's events.

    `there`: how many messages can really be delivered (a ready count may say more).
    """

    def __init__(self, there: int) -> None:
        self.there, self.delivered, self.acked = there, 0, []
        self.prefetch = self.unacked = 0
        self.on_message: Callable[..., None] | None = None
        self.take: BatchedTake | None = None
        self.most_in_hand = 0
        self.waits = 0  # waits for a delivery that did not come, each to a deadline of its own
        self._last_limit = 0.0

    def basic_qos(self, prefetch_count: int) -> None:
        self.prefetch = prefetch_count
        self.unacked = 0

    def basic_consume(self, queue: str, on_message: Callable[..., None], auto_ack: bool, consumer_tag: str) -> str:
        self.on_message = on_message
        return consumer_tag

    def process_data_events(self, time_limit: float) -> None:
        if self.on_message is None or self.unacked >= self.prefetch or self.delivered >= self.there:
            # Each wait is called with what is left of its deadline: a longer limit is a new wait.
            self.waits += time_limit > self._last_limit
            self._last_limit = time_limit
            time.sleep(min(time_limit, 0.01))
            return
        self._last_limit = 0.0
        self.delivered += 1
        self.unacked += 1
        self.on_message(self, SimpleNamespace(delivery_tag=self.delivered), pika.BasicProperties(), b"x" * 100)
        assert self.take is not None
        self.most_in_hand = max(self.most_in_hand, self.take.bodies_in_hand)

    def basic_cancel(self, consumer_tag: str) -> None:
        self.on_message = None

    def basic_ack(self, tag: int) -> None:
        self.acked.append(tag)


def taking(queue: Queue) -> BatchedTake:
    queue.take = BatchedTake(queue, queue)  # type: ignore[arg-type]
    return queue.take


def test_a_settled_message_is_told_only_once_its_ack_is_sent():
    # given a batch being read, its first message settled (replayed or dropped)
    queue = Queue(there=8)
    take = taking(queue)
    told: list[int] = []
    messages = take.take("erp-sync.inventory.parked", 8)
    _, _, tag = next(messages)
    take.ack(tag, lambda: told.append(tag))

    # then it is not told settled while its ack waits for the batch's end: cut short now, it stays parked
    assert told == [] and queue.acked == []
    # and once the batch ends, its ack goes out and it is told, once
    take.end()
    take.end()
    assert queue.acked == [tag] and told == [tag]


def test_a_reader_stopping_early_keeps_none_of_the_rest_of_its_batch():
    # given a reader that read 16: the batches of 1, 2, 4 and 8, then one of the batch of 16
    queue = Queue(there=100)
    take = taking(queue)
    messages = take.take("erp-sync.inventory.parked", 100)
    for _ in range(16):
        next(messages)
    queue.most_in_hand = 0

    # when it stops, and the consumer brings the rest of its batch before it is cancelled
    take.end()

    # then those were counted, not kept: a batch of large bodies is not held in memory
    assert queue.delivered == 1 + 2 + 4 + 8 + 16
    assert queue.most_in_hand == 0 and take.bodies_in_hand == 0


def test_messages_counted_ready_that_never_come_are_waited_for_once(monkeypatch):
    # given a queue that counted 10 ready and delivers 6 (4 purged by hand meanwhile)
    monkeypatch.setattr(parked_batches, "DELIVERY_WAIT_S", 0.2)
    queue = Queue(there=6)
    take = taking(queue)

    # when the reader takes all 10
    taken = list(take.take("erp-sync.inventory.parked", 10))

    # then it reads the 6 and waits out one delivery wait, not a second one at the batch's end
    assert len(taken) == 6
    assert queue.waits == 1


class CountedQueue(Queue):
    """`Queue` behind a reader: it counted `ready` when the read began; handed back, what is there is ready."""

    def __init__(self, there: int, ready: int) -> None:
        super().__init__(there)
        self.ready, self.slept = ready, 0

    def queue_declare(self, queue: str, passive: bool) -> SimpleNamespace:
        return SimpleNamespace(method=SimpleNamespace(message_count=self.ready))

    def basic_nack(self, delivery_tag: int, multiple: bool, requeue: bool) -> None:
        self.ready = self.there - len(self.acked)

    def sleep(self, seconds: float) -> None:
        self.slept += 1


def test_the_hand_back_does_not_wait_for_messages_counted_ready_that_never_came(monkeypatch, caplog):
    # given a reader that counted 10 parked and was delivered 6 (4 purged by hand meanwhile)
    monkeypatch.setattr(parked_batches, "DELIVERY_WAIT_S", 0.1)
    monkeypatch.setattr(dead_letters, "HAND_BACK_WAIT_S", 0.5)
    queue = CountedQueue(there=6, ready=10)
    reader = dead_letters._Reader(queue, queue)  # type: ignore[arg-type]
    queue.take = reader._taking
    assert len(list(reader.take_all(QUEUE))) == 6

    # when it hands them back
    reader.hand_back()

    # then its turn ends once the 6 are ready again, not after waiting for 10 that cannot be
    assert queue.slept == 0
    assert "still being handed back" not in caplog.text
