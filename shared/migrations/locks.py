"""How long a migration waits for a table's lock, and the index builds that wait as long as they need.

A schema change (ALTER TABLE, CREATE TRIGGER, LOCK TABLE) waits for every transaction under way on
its table, and every statement on the table that comes after it queues behind it: a push that holds
its order while the ERP answers would stall the whole shop's orders for as long as that call lasts.
So every migration's session waits at most LOCK_TIMEOUT for a lock; past it the revision fails,
its transaction changes nothing, and `erp-sync migrate` tries again (shared/migrate.py).

An index built or dropped CONCURRENTLY is the exception: it holds up no writer while it waits for
the transactions under way to end, and one cut short by a timeout would leave an invalid index.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic import context

# Under DATABASE_LOCK_TIMEOUT_MS's default (5 s): writers queued behind the wait do not time out.
LOCK_TIMEOUT = "3s"
# The Alembic config attribute that gives another wait (a test gives a shorter one).
LOCK_TIMEOUT_ATTRIBUTE = "lock_timeout"


def configured_lock_timeout() -> str:
    """The wait this run was given: LOCK_TIMEOUT unless the Alembic config's attributes say otherwise."""
    return str(context.config.attributes.get(LOCK_TIMEOUT_ATTRIBUTE, LOCK_TIMEOUT))


def lock_timeout_statement(lock_timeout: str) -> str:
    """The session's wait, not a transaction's: it holds for every revision's transaction of the run."""
    return f"SET lock_timeout = '{lock_timeout}'"


@contextmanager
def concurrently() -> Iterator[None]:
    """Outside the migration's transaction, with no limit on lock waits: for CONCURRENTLY index builds and drops."""
    migration = context.get_context()
    with migration.autocommit_block():
        migration.execute("SET lock_timeout = 0")
        try:
            yield
        finally:
            migration.execute(lock_timeout_statement(configured_lock_timeout()))
