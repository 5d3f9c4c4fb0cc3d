"""Runs the orders worker's batches: record the whole batch and commit, then push its orders side by side."""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from shared.consumer import Delivery, Done, Outcome, Runner


class OrderRunner:
    """Records a batch of orders in one transaction, then pushes each in a transaction of its own.

    The record commits before any push starts, so the shop stops selling the held stock at once
    however slow the ERP is. Pushes run `concurrency` at a time: each waits mostly on the ERP, and
    each locks only its own order's row. Messages for which `in_turn` holds (the probe's re-sends
    of a backlog, oldest first) are pushed one after another, in the batch's order.
    """

    def __init__(self, record: Runner, push: Runner, concurrency: int, in_turn: Callable[[Delivery], bool]) -> None:
        self._record = record
        self._push = push
        self._in_turn = in_turn
        self._pushers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="orders-push")

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        outcomes = self._record.run(batch)
        # Recorded (or known already) and not parked: push. A retry or a park decided while
        # recording stands, and the message comes back (or not) without being pushed.
        to_push = [number for number, outcome in enumerate(outcomes)
                   if isinstance(outcome, Done) and not outcome.follow_ups]
        side_by_side = {number: self._pushers.submit(self._push_one, batch[number])
                        for number in to_push if not self._in_turn(batch[number])}
        for number in to_push:
            if number not in side_by_side:
                outcomes[number] = self._push_one(batch[number])
        for number, pushed in side_by_side.items():
            outcomes[number] = pushed.result()
        return outcomes

    def _push_one(self, delivery: Delivery) -> Outcome:
        return self._push.run([delivery])[0]
