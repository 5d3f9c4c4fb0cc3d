"""One reader of the parking queues at a time: what the broker's answers to the reader's queue mean."""
from __future__ import annotations

import pika.exceptions
import pytest

from erp_sync.shared.errors import ConfigurationError, ParkedBeingRead
from erp_sync.shared.parked_reader import READER_LOCK, sole_reader
from erp_sync.shared.topology import PARKED_READERS_QUEUE


class Channel:
    def __init__(self, refusal: tuple[int, str] | None, consumed: list[str]) -> None:
        self.refusal = refusal
        self.consumed = consumed

    def queue_declare(self, name: str, **_: object) -> None:
        assert name == READER_LOCK
        if self.refusal is not None:
            raise pika.exceptions.ChannelClosedByBroker(*self.refusal)

    def basic_consume(self, queue: str, *_: object, **__: object) -> None:
        self.consumed.append(queue)


class Connection:
    """A broker that refuses the reader's queue with these answers, then grants it."""

    def __init__(self, *refusals: tuple[int, str]) -> None:
        self.refusals = list(refusals)
        self.slept = 0.0
        self.consumed: list[str] = []

    def channel(self) -> Channel:
        return Channel(self.refusals.pop(0) if self.refusals else None, self.consumed)

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


def test_the_reader_waits_its_turn_while_another_holds_the_queue():
    connection = Connection((405, "RESOURCE_LOCKED"), (405, "RESOURCE_LOCKED"))

    assert isinstance(sole_reader(connection, wait_s=10), Channel)  # type: ignore[arg-type]
    assert connection.slept == 1.0
    # and once it reads, it says so where the parked counts' readers look
    assert connection.consumed == [PARKED_READERS_QUEUE]


def test_without_time_to_wait_the_reader_is_told_another_reads():
    with pytest.raises(ParkedBeingRead, match="another `erp-sync dlq` command or the console is reading"):
        sole_reader(Connection((405, "RESOURCE_LOCKED")), wait_s=0)  # type: ignore[arg-type]


def test_a_user_without_the_right_to_declare_it_is_told_which_right_it_lacks():
    refused = Connection((403, "ACCESS_REFUSED - access to queue 'erp-sync.dlq.reader' refused"))

    with pytest.raises(ConfigurationError, match="grant it configure rights on that name"):
        sole_reader(refused, wait_s=10)  # type: ignore[arg-type]
