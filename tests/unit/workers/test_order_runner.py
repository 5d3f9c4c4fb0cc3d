"""PushRunner's own logic with a stand-in push: how many it pushes at once, and in which order."""
from __future__ import annotations

import threading
import time

from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.workers.order_runner import PushRunner

RESENT = {"resent": 1}


def delivery(tag: int, headers: dict | None = None) -> Delivery:
    return Delivery(tag, b"{}", f"ORD-{tag}", "application/json", headers or {})


class Pusher:
    """Notes each push, and how many ran at the same time."""

    def __init__(self, pause_s: float = 0.05) -> None:
        self.pause_s = pause_s
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.started: list[int] = []
        self.in_turn_overlaps = 0
        self._in_turn_running = 0

    def run(self, batch):
        [message] = batch
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.started.append(message.delivery_tag)
            if message.headers:
                self.in_turn_overlaps += self._in_turn_running
                self._in_turn_running += 1
        time.sleep(self.pause_s)
        with self.lock:
            self.running -= 1
            if message.headers:
                self._in_turn_running -= 1
        return [Done((OutgoingMessage("x", "pushed", b"", message.message_id or ""),))]


def runner(push, concurrency=4, budget_s=60.0) -> PushRunner:
    return PushRunner(push, concurrency, in_turn=lambda d: bool(d.headers), in_turn_budget_s=budget_s)


def test_pushes_run_side_by_side_up_to_the_concurrency():
    push = Pusher()
    outcomes = runner(push, concurrency=4).run([delivery(n) for n in range(12)])

    assert push.most_at_once == 4
    assert sorted(push.started) == list(range(12))
    assert all(o.follow_ups[0].routing_key == "pushed" for o in outcomes)


def test_resent_orders_are_pushed_one_after_another_in_the_batch_order():
    push = Pusher(pause_s=0.02)
    batch = [delivery(n, RESENT) for n in range(6)] + [delivery(n) for n in range(6, 10)]

    runner(push, concurrency=4).run(batch)

    resent_order = [tag for tag in push.started if tag < 6]
    assert resent_order == list(range(6)) and push.in_turn_overlaps == 0
    assert sorted(push.started) == list(range(10))


def test_resent_orders_stop_at_the_budget_and_the_rest_is_acked_unpushed():
    push = Pusher(pause_s=0.2)
    batch = [delivery(n, RESENT) for n in range(5)]

    outcomes = runner(push, budget_s=0.3).run(batch)

    # two fit in the budget; the others are acked unpushed (their orders wait in the database for the probe)
    assert push.started == [0, 1]
    assert outcomes[2:] == [Done()] * 3


def test_stranded_orders_over_the_budget_go_back_to_the_queue():
    # (the probe would not re-send a stranded order for hours; a local_only one it re-sends next round)
    push = Pusher(pause_s=0.2)
    batch = [delivery(n, RESENT | ({"stranded": 1} if n % 2 else {})) for n in range(5)]
    pushes = PushRunner(push, 4, in_turn=lambda d: bool(d.headers), in_turn_budget_s=0.3,
                        hand_back=handed_back, keep_over_budget=lambda d: "stranded" in d.headers)

    outcomes = pushes.run(batch)

    assert push.started == [0, 1]
    assert outcomes[2] == Done() and outcomes[4] == Done()
    [back] = outcomes[3].follow_ups
    assert (back.routing_key, back.message_id) == ("handed-back", "ORD-3")


def handed_back(message: Delivery) -> OutgoingMessage:
    return OutgoingMessage("x", "handed-back", message.body, message.message_id or "")


class StoppingPusher(Pusher):
    """Sets `stop` as soon as its first push begins, as SIGTERM would in the middle of a batch."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(pause_s=0.1)
        self.stop = stop

    def run(self, batch):
        self.stop.set()
        return super().run(batch)


def test_a_stop_lets_pushes_under_way_finish_and_hands_back_those_not_begun():
    stop = threading.Event()
    push = StoppingPusher(stop)
    pushes = PushRunner(push, 2, in_turn=lambda d: bool(d.headers), stop=stop, hand_back=handed_back)

    outcomes = pushes.run([delivery(n) for n in range(8)])
    pushes.close()

    # the two begun before the stop took effect end as pushed; the other six go back to the queue unpushed
    pushed = [n for n, o in enumerate(outcomes) if o.follow_ups[0].routing_key == "pushed"]
    back = [n for n, o in enumerate(outcomes) if o.follow_ups[0].routing_key == "handed-back"]
    assert sorted(push.started) == pushed and len(pushed) <= 2
    assert sorted(pushed + back) == list(range(8))
    assert all(outcomes[n].follow_ups[0].message_id == f"ORD-{n}" for n in back)


def test_a_stop_hands_back_resent_orders_not_begun():
    # (a stranded order's next re-send would be hours away, so it is not left to the probe)
    stop = threading.Event()
    push = StoppingPusher(stop)
    pushes = PushRunner(push, 2, in_turn=lambda d: bool(d.headers), stop=stop, hand_back=handed_back)

    outcomes = pushes.run([delivery(n, RESENT) for n in range(4)])

    assert push.started == [0]
    assert [(o.follow_ups[0].routing_key, o.follow_ups[0].message_id) for o in outcomes[1:]] == [
        ("handed-back", f"ORD-{n}") for n in range(1, 4)]
