"""A worker's batch run in one database transaction, each message's outcome decided: done, retry or park.

The handler runs over the batch in one transaction (a savepoint per message; a batch of one needs
none). A worker may also offer a batch handler: it gets the whole batch first, without savepoints,
and if it fails the batch is rolled back and run again message by message, which finds the
culprit. The consumer (shared/consumer.py) takes the outcomes to the broker.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from erp_sync.shared.alerts import Cause, alert
from erp_sync.shared.consumer import ConsumerConfig, Delivery, Done, Handled, HandlerResult, Outcome
from erp_sync.shared.db import translate_db_error
from erp_sync.shared.errors import DatabaseOutOfReach, ErpSyncError, PermanentError, TransientError
from erp_sync.shared.fields import id_named_in
from erp_sync.shared.logs import ids
from erp_sync.shared.retry_policy import Park, Retry, decide, describe, failed_attempts

logger = logging.getLogger(__name__)

# Failures for want of a database, in a row, after which a fresh `SELECT 1` decides whether a batch's
# other messages are tried one by one.
OUT_OF_REACH_TRIES = 2

# What a BatchRunner's handlers run their statements on: an ORM Session, or a Core Connection.
Scope = TypeVar("Scope", Session, Connection)
ScopedHandler = Callable[[Delivery, Scope], HandlerResult]
ScopedBatchHandler = Callable[[list[Delivery], Scope], list[HandlerResult]]


def _done(result: HandlerResult) -> Done:
    if isinstance(result, Handled):
        return Done(result.follow_ups, result.outcome)
    return Done(tuple(result or ()))


def _db_aware(error: BaseException) -> BaseException:
    return translate_db_error(error) if isinstance(error, SQLAlchemyError) else error


class BatchRunner(Generic[Scope]):
    """Runs a handler over a batch in one transaction of a scope `open_scope` gives; decides each message's outcome."""

    def __init__(
        self,
        handler: ScopedHandler[Scope],
        open_scope: Callable[[], Scope],
        config: ConsumerConfig,
        batch_handler: ScopedBatchHandler[Scope] | None = None,
    ) -> None:
        self._handler: ScopedHandler[Scope] = handler
        self._open_scope: Callable[[], Scope] = open_scope
        self._config = config
        self._batch_handler: ScopedBatchHandler[Scope] | None = batch_handler

    def run(self, batch: list[Delivery]) -> list[Outcome]:
        if self._batch_handler is not None and len(batch) > 1:
            try:
                return self._run_batch_handler(self._batch_handler, batch)
            except Exception as exc:  # noqa: BLE001 (any failure falls back to the per-message path)
                # Whatever it was (a bad message, a deadlock), the per-message path below isolates
                # it and decides its retry or park (logged there); the batch handler's work is rolled back.
                error = _db_aware(exc)
                logger.info("batch handler failed on messages %s to %s (%s); handling them one by one",
                               batch[0].message_id, batch[-1].message_id, describe(error))
                batch = _again(batch)
                if isinstance(error, DatabaseOutOfReach):
                    # The whole batch again in one transaction would wait out the same connect timeout.
                    return self._one_by_one(batch, out_of_reach_in_a_row=1)
        try:
            return self._run_in_one_transaction(batch)
        except (TransientError, PermanentError) as exc:
            if len(batch) == 1:
                return [self._decide(batch[0], exc)]
            # Part of an expected retry or park, which is logged for the message it concerns.
            logger.info("batch of %d failed (%s); handling its messages one by one", len(batch), exc)
            return self._one_by_one(_again(batch), out_of_reach_in_a_row=int(isinstance(exc, DatabaseOutOfReach)))

    def _one_by_one(self, batch: list[Delivery], out_of_reach_in_a_row: int) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for index, delivery in enumerate(batch):
            try:
                outcomes.append(self._run_alone(delivery))
                out_of_reach_in_a_row = 0
            except (TransientError, PermanentError) as exc:
                out_of_reach_in_a_row = out_of_reach_in_a_row + 1 if isinstance(exc, DatabaseOutOfReach) else 0
                outcomes.append(self._decide(delivery, exc))
                # Once is a dead pooled connection, or a message that broke its own (a statement
                # killed by a proxy's timeout); twice, and a fresh `SELECT 1` fails too, the database
                # is away for all. Trying each message would cost each a connect timeout (5 s against
                # a database that drops packets) before the outage hold could begin.
                if out_of_reach_in_a_row >= OUT_OF_REACH_TRIES and index + 1 < len(batch):
                    if self._answers():
                        out_of_reach_in_a_row = 0
                        continue
                    return outcomes + self._retried_untried(batch[index + 1:], exc)
        return outcomes

    def _answers(self) -> bool:
        """Whether the database answers `SELECT 1` in a scope of its own."""
        try:
            with self._open_scope() as scope:
                scope.execute(text("SELECT 1"))
        except (SQLAlchemyError, ErpSyncError):
            return False
        return True

    def _retried_untried(self, rest: list[Delivery], error: BaseException) -> list[Outcome]:
        logger.info("the database is out of reach (%s): the batch's last %d messages, %s to %s, are retried "
                    "untried", error, len(rest), rest[0].message_id, rest[-1].message_id)
        return [self._decide(delivery, error, quiet=True) for delivery in rest]

    def _run_batch_handler(self, batch_handler: ScopedBatchHandler[Scope], batch: list[Delivery]) -> list[Outcome]:
        with self._open_scope() as session, session.begin():
            results = batch_handler(batch, session)
            # Checked before the commit: a handler that lost track of a message must not commit.
            outcomes: list[Outcome] = [_done(result) for _, result in zip(batch, results, strict=True)]
        return outcomes

    def _run_in_one_transaction(self, batch: list[Delivery]) -> list[Outcome]:
        if len(batch) == 1:
            return [self._run_alone(batch[0])]
        outcomes: list[Outcome] = []
        try:
            with self._open_scope() as session, session.begin():
                for delivery in batch:
                    outcomes.append(self._run_one(delivery, session, session.begin_nested))
        except SQLAlchemyError as exc:
            raise translate_db_error(exc) from exc
        return outcomes

    def _run_alone(self, delivery: Delivery) -> Outcome:
        # A transaction of its own needs no savepoint: a failure rolls all of it back.
        try:
            with self._open_scope() as session:
                return self._run_one(delivery, session, session.begin)
        except SQLAlchemyError as exc:
            # A Core Connection connects as it opens (a Session only at its first statement): a
            # database out of reach fails here, outside the handler, and stopped the worker.
            raise translate_db_error(exc) from exc

    def _run_one(
        self, delivery: Delivery, session: Scope, scope: Callable[[], AbstractContextManager[Any]]
    ) -> Outcome:
        try:
            with scope():
                result = self._handler(delivery, session)
        except Exception as exc:
            error = _db_aware(exc)
            if isinstance(error, TransientError):
                # The whole transaction may be unusable now: let the batch decide.
                raise error from exc
            return self._decide(delivery, error)
        return _done(result)

    def _decide(self, delivery: Delivery, error: BaseException, *, quiet: bool = False) -> Retry | Park:
        outcome = decide(error, failed_attempts(delivery.headers), self._config.retry_delays_ms,
                         self._config.max_attempts)
        if isinstance(outcome, Park):
            message_id = delivery.message_id or id_named_in(delivery.body)
            alert(Cause.MESSAGE_PARKED, "parking message %s: %s", message_id, outcome.reason,
                  extra=ids(message_id=message_id))
        elif not quiet:
            # Expected (an outage's retries): news only when it ends in parking, an ERROR.
            logger.info("message %s failed (%s); attempt %d in %d ms",
                        delivery.message_id, describe(error), outcome.attempt, outcome.delay_ms,
                        extra=ids(message_id=delivery.message_id, attempt=outcome.attempt))
        return outcome


def _again(batch: list[Delivery]) -> list[Delivery]:
    """The batch to run once more: each message handled already in a transaction whose commit may
    have landed unseen, so `redelivered`, as the broker marks one it hands out again (a catalog
    duplicate then asks again for the images its first handling sent for)."""
    return [replace(delivery, redelivered=True) for delivery in batch]
