"""Which of a channel's deliveries are done, and the fewest ack frames that tell the broker so.

Messages handled side by side end out of order. Each ack frame costs the consumer a write and a
flush of its connection, so the ones that end together are acked together: one frame with
`multiple` for a run from the oldest delivery still out, one frame each for the others (acking
those only once their elders end would fill the prefetch window behind a slow message).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import NamedTuple


class AckFrame(NamedTuple):
    delivery_tag: int
    multiple: bool


class AckBook:
    """The delivery tags of one channel, from delivery to ack; a new channel needs a new book."""

    def __init__(self) -> None:
        self._out: deque[int] = deque()  # delivered and not yet covered by a `multiple` ack, oldest first
        self._done: set[int] = set()  # handled, not acked yet
        self._acked_alone: set[int] = set()  # acked by a frame of their own while an elder was still out

    def delivered(self, delivery_tag: int) -> None:
        """Called for every delivery, in the order the channel delivers them."""
        self._out.append(delivery_tag)

    def done(self, delivery_tags: Iterable[int]) -> None:
        self._done.update(delivery_tags)

    def frames(self) -> list[AckFrame]:
        """The frames that ack every delivery done so far, each once; the book counts them sent."""
        last_of_run: int | None = None
        while self._out and (self._out[0] in self._done or self._out[0] in self._acked_alone):
            tag = self._out.popleft()
            if tag in self._done:
                self._done.remove(tag)
                last_of_run = tag
            else:
                # Acked already, and a broker refuses a second ack of a tag: the run's frame must not end on it.
                self._acked_alone.remove(tag)
        frames = [] if last_of_run is None else [AckFrame(last_of_run, multiple=True)]
        frames += [AckFrame(tag, multiple=False) for tag in sorted(self._done)]
        self._acked_alone |= self._done
        self._done.clear()
        return frames
