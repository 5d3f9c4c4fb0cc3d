"""A batch that failed for a database out of reach is held and run again once it answers; other retries pass."""
from __future__ import annotations

import threading

from erp_sync.shared.consumer import Delivery, Done
from erp_sync.shared.errors import DatabaseUnavailable
from erp_sync.shared.retry_policy import Retry
from erp_sync.workers.outage_hold import OutageHold

RETRY = Retry(1000, 2)


def deliveries(count: int) -> list[Delivery]:
    return [Delivery(tag, b"{}", f"msg-{tag}", "application/json") for tag in range(1, count + 1)]


class Scripted:
    """A runner answering each call with the next list of outcomes; it records what it was given."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.given: list[list[str | None]] = []
        self.redelivered: list[list[bool]] = []

    def run(self, batch):
        self.given.append([delivery.message_id for delivery in batch])
        self.redelivered.append([delivery.redelivered for delivery in batch])
        return list(self.answers.pop(0))


class Database:
    """Out of reach for the first `down` checks, then answering."""

    def __init__(self, down: int):
        self.down, self.checks = down, 0

    def __call__(self) -> None:
        self.checks += 1
        if self.checks <= self.down:
            raise DatabaseUnavailable("connection refused")


def test_messages_that_failed_for_the_database_are_run_again_once_it_answers_and_no_others():
    # given a batch of three whose second and third failed while the database was away
    runner = Scripted([Done(), RETRY, RETRY], [Done(), Done()])
    database = Database(down=3)

    # when it is run
    outcomes = OutageHold(runner, database, threading.Event(), probe_interval_s=0.001).run(deliveries(3))

    # then the two were held until the database answered, run again, and applied: no retry path
    assert outcomes == [Done(), Done(), Done()]
    assert runner.given == [["msg-1", "msg-2", "msg-3"], ["msg-2", "msg-3"]]
    assert database.checks == 4
    # as messages run before, perhaps committed unseen
    assert runner.redelivered == [[False, False, False], [True, True]]


def test_a_retry_while_the_database_answers_goes_round_the_retry_path():
    # a deadlock or a lock timeout: the database is there, waiting would change nothing
    runner = Scripted([Done(), RETRY])

    outcomes = OutageHold(runner, Database(down=0), threading.Event()).run(deliveries(2))

    assert outcomes == [Done(), RETRY]
    assert len(runner.given) == 1


def test_a_hold_ends_when_the_worker_stops_and_the_messages_go_round_the_retry_path():
    stop = threading.Event()
    stop.set()
    runner = Scripted([RETRY])

    outcomes = OutageHold(runner, Database(down=10**6), stop, probe_interval_s=0.001).run(deliveries(1))

    assert outcomes == [RETRY] and len(runner.given) == 1


def test_a_hold_lasts_at_most_its_bound_however_the_database_comes_and_goes():
    # given a database away, then answering a probe but failing the batch again, then away for good
    runner = Scripted([RETRY], [RETRY])
    flapping = iter([False, True] + [False] * 10**6)

    def check():
        if not next(flapping):
            raise DatabaseUnavailable("connection refused")

    outcomes = OutageHold(runner, check, threading.Event(), hold_s=0.05, probe_interval_s=0.001).run(deliveries(1))

    # then the message went round the retry path once the bound ran out, having been run twice
    assert outcomes == [RETRY]
    assert len(runner.given) == 2
