"""A message that keeps killing its worker is parked on its own, before its neighbours are parked with it.

A worker that dies (out of memory, a crash in a C extension) acks nothing more: RabbitMQ hands back
every message it had under way or prefetched, each with its delivery count raised, and after
`CRASH_DELIVERY_LIMIT` deliveries parks them all. Back twice, a message is a suspect, and the
consumer hands it over alone (shared/consumer.py). Here it waits until no batch of the process is
under way, in any of its consumers, and runs with none beside it (`PROCESS_GATE`); each start is
counted in PostgreSQL before it runs and forgotten once it ends, so the count is of the times the
process died on that message and no other. Started `UNFINISHED_LIMIT` times without ending, it is
parked with the reason, and the messages behind it go on. A count stays with a message parked (one
that comes back, its park lost or replayed, is parked again at once) until it is
`FORGOTTEN_AFTER` old. The orders worker's ERP probe, a loop beside its consumers, is not held.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from datetime import timedelta

from sqlalchemy import Engine, delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.consumer import Delivery, Outcome, Runner
from erp_sync.shared.errors import WorkerStopping
from erp_sync.shared.fields import id_named_in
from erp_sync.shared.logs import ids
from erp_sync.shared.models.operations import UnfinishedAttempt
from erp_sync.shared.retry_policy import Park
from erp_sync.workers.process_gate import ProcessGate

logger = logging.getLogger(__name__)

UNFINISHED_LIMIT = 3
FORGOTTEN_AFTER = timedelta(days=1)

# Every batch of the process passes it. The orders worker consumes two queues: a batch of one under
# way when a suspect of the other killed the process would have the suspect counted for a death
# that was not its own.
PROCESS_GATE = ProcessGate()


def message_key(delivery: Delivery) -> str:
    """What names a message across its deliveries: its id and its body (ids are the sender's to reuse)."""
    digest = hashlib.sha256((delivery.message_id or "").encode("utf-8", "replace"))
    digest.update(b"\0")
    digest.update(delivery.body)
    return digest.hexdigest()


class UnfinishedAttempts:
    """The starts of suspects that have not ended, per queue and message, in PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def started(self, queue: str, key: str) -> int:
        """Count one more start of the message; how many there have been without an end, this one included.

        Counts last started `FORGOTTEN_AFTER` ago are dropped first: a count left by an end that could
        not be noted (the database away), or by a message parked and never seen again.
        """
        upsert = insert(UnfinishedAttempt).values(queue=queue, message_key=key, attempts=1, started_at=func.now())
        upsert = upsert.on_conflict_do_update(
            index_elements=[UnfinishedAttempt.queue, UnfinishedAttempt.message_key],
            set_={"attempts": UnfinishedAttempt.attempts + 1, "started_at": func.now()})
        with self._engine.begin() as connection:
            connection.execute(delete(UnfinishedAttempt)
                               .where(UnfinishedAttempt.started_at < func.now() - FORGOTTEN_AFTER))
            return int(connection.execute(upsert.returning(UnfinishedAttempt.attempts)).scalar_one())

    def ended(self, queue: str, key: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(delete(UnfinishedAttempt).where(UnfinishedAttempt.queue == queue,
                                                               UnfinishedAttempt.message_key == key))


class CrashGuard:
    """A Runner that counts each start of a suspect (a batch of one), and parks it past `UNFINISHED_LIMIT`."""

    def __init__(self, runner: Runner, queue: str, attempts: UnfinishedAttempts, stop: threading.Event,
                 gate: ProcessGate = PROCESS_GATE) -> None:
        self._runner = runner
        self._queue = queue
        self._attempts = attempts
        self._stop = stop
        self._gate = gate

    @classmethod
    def on(cls, runner: Runner, queue: str, engine: Engine, stop: threading.Event) -> CrashGuard:
        """`runner` for the messages of `queue`, their starts counted in `engine`'s database, until `stop`."""
        return cls(runner, queue, UnfinishedAttempts(engine), stop)

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        if len(batch) != 1 or not batch[0].suspect:
            self._gate.enter()
            try:
                self._not_stopped(batch)
                return self._runner.run(batch)
            finally:
                self._gate.leave()
        with self._gate.alone():
            self._not_stopped(batch)
            return self._run_suspect(batch[0])

    def _not_stopped(self, batch: list[Delivery]) -> None:
        """Raise WorkerStopping if the worker was told to stop while the batch waited at the gate.

        Suspects run one at a time: begun after the stop, one after another, they would outlast the
        stop's bound, and the one cut short would be counted as a death.
        """
        if self._stop.is_set():
            raise WorkerStopping(f"stopping: the batch from {batch[0].message_id} stays unacked")

    def _run_suspect(self, delivery: Delivery) -> list[Outcome]:
        key = message_key(delivery)
        try:
            attempts = self._attempts.started(self._queue, key)
        except SQLAlchemyError as exc:
            # Uncounted, it runs as any message does; the broker's delivery limit still bounds it.
            logger.warning("could not count a start of suspect message %s (%s); running it uncounted",
                           delivery.message_id, exc)
            return self._runner.run([delivery])
        if attempts > UNFINISHED_LIMIT:
            # The count stays: if the park is lost with the connection, the message is parked again.
            return [self._parked(delivery, attempts - 1)]
        logger.info("message %s is back after its worker stopped while it was under way: start %d of "
                    "at most %d on its own", delivery.message_id, attempts, UNFINISHED_LIMIT,
                    extra=ids(message_id=delivery.message_id, attempt=attempts))
        try:
            return self._runner.run([delivery])
        finally:
            # Ended, by an outcome or an error this process lived through: not a death to count.
            self._forget(delivery, key)

    def _parked(self, delivery: Delivery, deaths: int) -> Park:
        reason = (f"its worker stopped {deaths} times while handling it alone, without an error "
                  "(killed: out of memory, or a crash; see the worker's logs and restarts); "
                  "parked so that the messages behind it go on")
        message_id = delivery.message_id or id_named_in(delivery.body)
        alert(Cause.MESSAGE_PARKED, "parking message %s: %s", message_id, reason, extra=ids(message_id=message_id))
        return Park(reason)

    def _forget(self, delivery: Delivery, key: str) -> None:
        try:
            self._attempts.ended(self._queue, key)
        except SQLAlchemyError as exc:
            # Left, the count would park the message early if it came back as a suspect within FORGOTTEN_AFTER.
            logger.warning("could not forget the starts of message %s (%s)", delivery.message_id, exc)
