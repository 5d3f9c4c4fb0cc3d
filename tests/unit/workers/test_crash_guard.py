"""A suspect's starts are counted before it runs and forgotten once it ends; past the limit it is parked."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import OperationalError

from erp_sync.shared.consumer import SUSPECT_RETURNS, Delivery, Done
from erp_sync.shared.errors import WorkerStopping
from erp_sync.shared.retry_policy import DELIVERY_COUNT_HEADER, Park
from erp_sync.workers.crash_guard import UNFINISHED_LIMIT, CrashGuard, message_key
from erp_sync.workers.process_gate import ProcessGate

QUEUE = "erp-sync.media"


def delivery(tag: int, *, suspect: bool = True, body: bytes = b"{}") -> Delivery:
    headers = {DELIVERY_COUNT_HEADER: SUSPECT_RETURNS} if suspect else {}
    return Delivery(tag, body, f"msg-{tag}", "application/json", headers, redelivered=suspect)


class Attempts:
    """Starts counted as UnfinishedAttempts counts them, in memory; `broken` fails every call."""

    def __init__(self, earlier: int = 0, broken: bool = False):
        self.counts: dict[tuple[str, str], int] = {}
        self.earlier, self.broken = earlier, broken
        self.starts = 0

    def started(self, queue: str, key: str) -> int:
        if self.broken:
            raise OperationalError("INSERT", {}, Exception("the database is away"))
        self.starts += 1
        self.counts[queue, key] = self.counts.get((queue, key), self.earlier) + 1
        return self.counts[queue, key]

    def ended(self, queue: str, key: str) -> None:
        if self.broken:
            raise OperationalError("DELETE", {}, Exception("the database is away"))
        self.counts.pop((queue, key), None)


class Runner:
    def __init__(self, error: BaseException | None = None):
        self.given: list[list[int]] = []
        self.error = error

    def run(self, batch):
        self.given.append([each.delivery_tag for each in batch])
        if self.error is not None:
            raise self.error
        return [Done() for _ in batch]


def guard(runner: Runner, attempts: Attempts) -> CrashGuard:
    return CrashGuard(runner, QUEUE, attempts, threading.Event(), ProcessGate())  # type: ignore[arg-type]


def test_batches_of_unsuspected_messages_pass_uncounted():
    runner, attempts = Runner(), Attempts()

    assert guard(runner, attempts).run([delivery(1, suspect=False), delivery(2, suspect=False)]) == [Done(), Done()]
    assert guard(runner, attempts).run([delivery(3, suspect=False)]) == [Done()]
    assert runner.given == [[1, 2], [3]] and attempts.starts == 0


def test_a_suspect_is_counted_while_it_runs_and_forgotten_once_it_ends():
    counted: list[dict] = []
    attempts = Attempts()

    class Watching(Runner):
        def run(self, batch):
            counted.append(dict(attempts.counts))
            return super().run(batch)

    suspect = delivery(1)
    assert guard(Watching(), attempts).run([suspect]) == [Done()]
    assert counted == [{(QUEUE, message_key(suspect)): 1}]
    assert attempts.counts == {}


def test_a_suspect_started_past_the_limit_is_parked_untried_and_its_count_kept(caplog):
    runner, attempts = Runner(), Attempts(earlier=UNFINISHED_LIMIT)

    outcomes = guard(runner, attempts).run([delivery(1)])

    assert runner.given == []
    assert len(outcomes) == 1 and isinstance(outcomes[0], Park)
    assert outcomes[0].reason.startswith(f"its worker stopped {UNFINISHED_LIMIT} times while handling it alone")
    # Should the park be lost with the connection, the message back is parked again, not run.
    assert attempts.counts == {(QUEUE, message_key(delivery(1))): UNFINISHED_LIMIT + 1}
    assert "ALERT" in caplog.text and "msg-1" in caplog.text


def test_the_last_start_within_the_limit_still_runs():
    runner, attempts = Runner(), Attempts(earlier=UNFINISHED_LIMIT - 1)
    assert guard(runner, attempts).run([delivery(1)]) == [Done()]
    assert runner.given == [[1]]


@pytest.mark.parametrize("suspect", [True, False], ids=["a suspect", "a batch"])
def test_an_error_the_process_lives_through_is_no_death_to_count_and_leaves_the_gate_open(suspect):
    gate, attempts = ProcessGate(), Attempts()
    failing = CrashGuard(Runner(error=ConnectionError("the broker went")), QUEUE, attempts,  # type: ignore[arg-type]
                         threading.Event(), gate)
    with pytest.raises(ConnectionError):
        failing.run([delivery(1, suspect=suspect)])
    assert attempts.counts == {}

    after = in_thread(CrashGuard(Runner(), QUEUE, attempts, threading.Event(), gate), [delivery(2)])  # type: ignore[arg-type]
    after.join(5)
    assert not after.is_alive(), "the gate stayed closed after the error"


def test_a_suspect_runs_uncounted_when_the_database_cannot_count_it(caplog):
    runner = Runner()
    assert guard(runner, Attempts(broken=True)).run([delivery(1)]) == [Done()]
    assert runner.given == [[1]]
    assert "running it uncounted" in caplog.text


def test_the_same_id_with_another_body_is_another_message():
    assert message_key(delivery(1, body=b"a")) != message_key(delivery(1, body=b"b"))
    assert message_key(delivery(1, body=b"a")) == message_key(delivery(1, body=b"a"))


class Held(Runner):
    """A runner whose `run` waits, under way, until released; `started` is set once it runs."""

    def __init__(self):
        super().__init__()
        self.started, self.release = threading.Event(), threading.Event()

    def run(self, batch):
        self.started.set()
        assert self.release.wait(10)
        return super().run(batch)


def in_thread(guard_: CrashGuard, batch: list[Delivery]) -> threading.Thread:
    thread = threading.Thread(target=guard_.run, args=(batch,), daemon=True)
    thread.start()
    return thread


def test_a_suspect_waits_for_the_batches_of_every_consumer_of_the_process_under_way():
    # two guards as the orders worker has them, one per queue, on the process's gate
    under_way, suspect_runner = Held(), Runner()
    recording = CrashGuard(under_way, "erp-sync.orders", Attempts(), threading.Event())  # type: ignore[arg-type]
    pushing = CrashGuard(suspect_runner, "erp-sync.orders-push", Attempts(), threading.Event())  # type: ignore[arg-type]
    batch = in_thread(recording, [delivery(1, suspect=False)])
    assert under_way.started.wait(5)

    suspect = in_thread(pushing, [delivery(2)])
    suspect.join(0.3)
    assert suspect_runner.given == []  # waiting while the other queue's batch is under way

    under_way.release.set()
    suspect.join(5)
    batch.join(5)
    assert suspect_runner.given == [[2]]


def test_no_batch_of_the_process_starts_while_a_suspect_runs():
    suspect_runner, later = Held(), Runner()
    pushing = CrashGuard(suspect_runner, "erp-sync.orders-push", Attempts(), threading.Event())  # type: ignore[arg-type]
    recording = CrashGuard(later, "erp-sync.orders", Attempts(), threading.Event())  # type: ignore[arg-type]
    suspect = in_thread(pushing, [delivery(1)])
    assert suspect_runner.started.wait(5)

    batch = in_thread(recording, [delivery(2, suspect=False), delivery(3, suspect=False)])
    batch.join(0.3)
    assert later.given == []

    suspect_runner.release.set()
    batch.join(5)
    suspect.join(5)
    assert later.given == [[2, 3]]


def test_a_suspect_waiting_holds_back_the_batches_that_come_after_it():
    gate = ProcessGate()
    under_way, suspect_runner, later = Held(), Runner(), Runner()
    batch = in_thread(CrashGuard(under_way, QUEUE, Attempts(), threading.Event(), gate), [delivery(1, suspect=False)])  # type: ignore[arg-type]
    assert under_way.started.wait(5)
    suspect = in_thread(CrashGuard(suspect_runner, QUEUE, Attempts(), threading.Event(), gate), [delivery(2)])  # type: ignore[arg-type]
    suspect.join(0.2)

    after = in_thread(CrashGuard(later, QUEUE, Attempts(), threading.Event(), gate), [delivery(3, suspect=False)])  # type: ignore[arg-type]
    after.join(0.3)
    assert later.given == [] and suspect_runner.given == []  # the suspect first, then the batches after it

    under_way.release.set()
    for thread in (batch, suspect, after):
        thread.join(5)
    assert suspect_runner.given == [[2]] and later.given == [[3]]


def test_two_suspects_of_a_process_run_one_after_the_other():
    first, second = Held(), Runner()
    one = in_thread(CrashGuard(first, "erp-sync.orders", Attempts(), threading.Event()),  # type: ignore[arg-type]
                    [delivery(1)])
    assert first.started.wait(5)
    other = in_thread(CrashGuard(second, "erp-sync.orders-push", Attempts(), threading.Event()),  # type: ignore[arg-type]
                      [delivery(2)])
    other.join(0.3)
    assert second.given == []

    first.release.set()
    one.join(5)
    other.join(5)
    assert second.given == [[2]]


@pytest.mark.parametrize("suspect", [True, False], ids=["a suspect", "a batch"])
def test_what_waited_at_the_gate_until_after_a_stop_stays_unacked_untried_and_uncounted(suspect):
    gate, stop, under_way = ProcessGate(), threading.Event(), Held()
    batch = in_thread(CrashGuard(under_way, QUEUE, Attempts(), stop, gate), [delivery(1)])  # type: ignore[arg-type]
    assert under_way.started.wait(5)
    waiting_runner, attempts, raised = Runner(), Attempts(), []

    def run_waiting() -> None:
        try:
            CrashGuard(waiting_runner, QUEUE, attempts, stop, gate).run([delivery(2, suspect=suspect)])  # type: ignore[arg-type]
        except WorkerStopping as exc:
            raised.append(exc)

    waiting = threading.Thread(target=run_waiting, daemon=True)
    waiting.start()
    waiting.join(0.2)

    stop.set()
    under_way.release.set()
    waiting.join(5)
    batch.join(5)
    assert len(raised) == 1 and "stays unacked" in str(raised[0])
    assert waiting_runner.given == [] and attempts.starts == 0


def test_a_suspect_interrupted_while_it_waits_leaves_the_gate_open(monkeypatch):
    gate, under_way = ProcessGate(), Held()
    batch = in_thread(CrashGuard(under_way, QUEUE, Attempts(), threading.Event(), gate),  # type: ignore[arg-type]
                      [delivery(1, suspect=False)])
    assert under_way.started.wait(5)
    monkeypatch.setattr(gate._changed, "wait", lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        with gate.alone():
            pass
    monkeypatch.undo()

    under_way.release.set()
    batch.join(5)
    later = Runner()
    after = in_thread(CrashGuard(later, QUEUE, Attempts(), threading.Event(), gate),  # type: ignore[arg-type]
                      [delivery(2, suspect=False)])
    after.join(5)
    assert later.given == [[2]]
