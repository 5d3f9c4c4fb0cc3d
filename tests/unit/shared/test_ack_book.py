"""The ack frames a channel sends for deliveries handled side by side: each acked once, none early, in few frames."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from erp_sync.shared.ack_book import AckBook, AckFrame


class Broker:
    """A channel's unacked deliveries as RabbitMQ keeps them, and its rule for an ack frame."""

    def __init__(self) -> None:
        self.unacked: list[int] = []

    def deliver(self, tag: int) -> None:
        self.unacked.append(tag)

    def ack(self, frame: AckFrame) -> set[int]:
        # RabbitMQ closes the channel (PRECONDITION_FAILED, unknown delivery tag) for a tag not outstanding.
        assert frame.delivery_tag in self.unacked, f"tag {frame.delivery_tag} acked twice or never delivered"
        acked = {tag for tag in self.unacked if tag <= frame.delivery_tag} if frame.multiple else {frame.delivery_tag}
        self.unacked = [tag for tag in self.unacked if tag not in acked]
        return acked


def test_a_run_from_the_oldest_delivery_is_one_frame() -> None:
    book = AckBook()
    for tag in range(1, 6):
        book.delivered(tag)
    book.done([2, 1, 3])
    assert book.frames() == [AckFrame(3, multiple=True)]


def test_a_delivery_done_behind_one_still_out_is_acked_alone_not_held_back() -> None:
    book = AckBook()
    for tag in range(1, 5):
        book.delivered(tag)
    book.done([2, 3])
    # Held back, 2 and 3 would fill the prefetch window while 1 (a slow ERP call, say) is out.
    assert book.frames() == [AckFrame(2, multiple=False), AckFrame(3, multiple=False)]
    book.done([1, 4])
    # 4's frame covers 1 too; a frame ending on 2 or 3 would ack them twice.
    assert book.frames() == [AckFrame(4, multiple=True)]


def test_nothing_done_sends_nothing() -> None:
    book = AckBook()
    book.delivered(1)
    assert book.frames() == []


@given(st.data())
def test_every_done_delivery_is_acked_once_and_no_other(data: st.DataObject) -> None:
    book, broker = AckBook(), Broker()
    delivered: list[int] = []
    pending: set[int] = set()
    acked: set[int] = set()
    for _ in range(data.draw(st.integers(1, 30), label="rounds")):
        for _ in range(data.draw(st.integers(0, 4), label="deliveries")):
            tag = len(delivered) + 1
            delivered.append(tag)
            book.delivered(tag)
            broker.deliver(tag)
            pending.add(tag)
        ending = data.draw(st.sets(st.sampled_from(sorted(pending))) if pending else st.just(set()), label="ending")
        pending -= ending
        book.done(ending)
        newly = set().union(*(broker.ack(frame) for frame in book.frames()))
        assert newly == ending, "an ack must take exactly the deliveries that ended: no fewer, and none still out"
        acked |= newly
    assert set(broker.unacked) == pending
    assert acked | pending == set(delivered)
