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
from alembic.runtime.migration import MigrationContext

# Under DATABASE_LOCK_TIMEOUT_MS's default (5 s): writers queued behind the wait do not time out.
LOCK_TIMEOUT = "3s"
# The wait's name among the Alembic config's attributes (where a test sets a shorter one) and the
# migration context's options (where `concurrently` finds it again).
LOCK_TIMEOUT_OPTION = "lock_timeout"  # env.py passes it to context.configure by this name


def configured_lock_timeout() -> str:
    """The wait this run was given: LOCK_TIMEOUT unless the Alembic config's attributes say otherwise."""
    return str(context.config.attributes.get(LOCK_TIMEOUT_OPTION, LOCK_TIMEOUT))


def set_lock_timeout(migration: MigrationContext, lock_timeout: str) -> None:
    """The session's wait, not the transaction's: it outlives the commits `concurrently` makes."""
    migration.execute(f"SET lock_timeout = '{lock_timeout}'")


@contextmanager
def concurrently() -> Iterator[None]:
    """Outside the migration's transaction, with no limit on lock waits: for CONCURRENTLY index builds and drops."""
    migration = context.get_context()
    with migration.autocommit_block():
        set_lock_timeout(migration, "0")
        try:
            yield
        finally:
            set_lock_timeout(migration, migration.opts[LOCK_TIMEOUT_OPTION])
