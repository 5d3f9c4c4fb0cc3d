"""Runs a batch of the orders worker's pushes: several orders at a time, each in a transaction of its own."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from erp_sync.shared.consumer import Delivery, Done, Outcome, Runner
from erp_sync.shared.publisher import OutgoingMessage

logger = logging.getLogger(__name__)

# Re-sends pushed in turn stop after this long; the rest stay local_only and come back with the
# probe's next round. Against an ERP that hangs, a long backlog would otherwise keep the batch
# unacked past RabbitMQ's consumer timeout, and the whole batch would come round again.
IN_TURN_BUDGET_S = 60.0


class PushRunner:
    """Pushes a batch's orders `concurrency` at a time, each through `push` in a transaction of its own.

    Each push waits mostly on the ERP and locks only its own order's row. Messages for which
    `in_turn` holds (the probe's re-sends of a backlog, oldest first) are pushed one after another
    in the batch's order, beside the others, for at most `in_turn_budget_s`; those left are acked
    unpushed (their orders wait in the database for the probe's next round), except those
    `keep_over_budget` names, which `hand_back` queues again. Once `stop` is set,
    pushes not yet begun, re-sends included, are not begun: `hand_back` turns each into a message
    that queues it again.
    """

    def __init__(self, push: Runner, concurrency: int, in_turn: Callable[[Delivery], bool],
                 in_turn_budget_s: float = IN_TURN_BUDGET_S, stop: threading.Event | None = None,
                 hand_back: Callable[[Delivery], OutgoingMessage] | None = None,
                 keep_over_budget: Callable[[Delivery], bool] = lambda _delivery: False) -> None:
        self._push = push
        self._in_turn = in_turn
        self._keep_over_budget = keep_over_budget
        self._in_turn_budget_s = in_turn_budget_s
        self._stop = stop or threading.Event()
        self._hand_back = hand_back
        self._pushers = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="orders-push")

    def close(self) -> None:
        """Wait for the pushes under way, and end the pushing threads."""
        self._pushers.shutdown(wait=True)

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        outcomes: list[Outcome] = [Done()] * len(batch)
        side_by_side: dict[int, Future[Outcome]] = {
            number: self._pushers.submit(self._push_one, delivery)
            for number, delivery in enumerate(batch) if not self._in_turn(delivery)
        }
        try:
            self._push_in_turn([n for n in range(len(batch)) if n not in side_by_side], batch, outcomes)
        finally:
            wait(side_by_side.values())  # none is left running behind an error
        for number, pushed in side_by_side.items():
            outcomes[number] = pushed.result()
        return outcomes

    def _push_in_turn(self, numbers: list[int], batch: list[Delivery], outcomes: list[Outcome]) -> None:
        deadline = time.monotonic() + self._in_turn_budget_s
        for position, number in enumerate(numbers):
            if self._stop.is_set():
                # All handed back, not left: a stranded order's next re-send is hours away.
                logger.info("%d re-sent orders not begun: the worker is stopping", len(numbers) - position)
                self._leave(numbers[position:], batch, outcomes, keep=lambda _delivery: True)
                return
            if time.monotonic() > deadline:
                logger.warning("%d re-sent orders left unpushed, from %s on: the ERP is slow",
                               len(numbers) - position, batch[number].message_id)
                self._leave(numbers[position:], batch, outcomes, keep=self._keep_over_budget)
                return
            outcomes[number] = self._push_one(batch[number])

    def _leave(self, numbers: list[int], batch: list[Delivery], outcomes: list[Outcome],
               keep: Callable[[Delivery], bool]) -> None:
        """Hand back those of the unpushed that `keep` names; the others are acked as they are."""
        if self._hand_back is None:
            return
        for number in numbers:
            if keep(batch[number]):
                outcomes[number] = Done((self._hand_back(batch[number]),))

    def _push_one(self, delivery: Delivery) -> Outcome:
        if self._stop.is_set() and self._hand_back is not None:
            return Done((self._hand_back(delivery),))
        return self._push.run([delivery])[0]
