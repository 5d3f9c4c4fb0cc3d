"""Alembic's entry point: run the migrations against the configured database."""
from __future__ import annotations

import os
import time
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

import erp_sync.shared.models  # noqa: F401  (fills Base.metadata with every table)
from erp_sync.shared.db import Base, psycopg_url
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.migrations.locks import configured_lock_timeout, lock_timeout_statement

# Any constant works as long as every erp-sync process uses the same one.
MIGRATION_LOCK_KEY = 0x657270_73796E63  # "erp" "sync"
LOCK_POLL_S = 0.2


def database_url() -> str:
    """The URL set by shared.migrate.alembic_config, else DATABASE_URL (alembic.ini for developers)."""
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigurationError("DATABASE_URL is not set: Alembic does not know which database to migrate")
    return psycopg_url(url).render_as_string(hide_password=False)


def run_migrations_offline() -> None:
    """Write the SQL of the migrations instead of running it (`alembic upgrade --sql`)."""
    context.configure(
        url=database_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.execute(lock_timeout_statement(configured_lock_timeout()))
        context.run_migrations()


def wait_for_migration_lock(connection: Connection) -> None:
    """Take the migration lock, waiting while another process migrates.

    Several processes may run `erp-sync migrate` at once. The lock is the session's, not a
    transaction's: an index built CONCURRENTLY commits part-way, and the lock must stay. Closing
    the connection (NullPool) ends the session and frees it, however the run ends. It is polled
    between transactions rather than waited for in one: a migrator waiting inside a statement
    holds a snapshot, which the other's CREATE INDEX CONCURRENTLY would wait for, a deadlock.
    """
    while not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}):
        connection.commit()
        time.sleep(LOCK_POLL_S)
    connection.commit()


def run_migrations_online() -> None:
    """Run the migrations, one migrating process at a time, each lock waited for briefly.

    A transaction a revision: one held off (shared/migrations/locks.py) rolls back alone, and the
    revisions before it stay applied, with the indexes some of them built CONCURRENTLY (committed
    as they are built, whatever comes after).
    """
    engine = create_engine(database_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            wait_for_migration_lock(connection)
            connection.exec_driver_sql(lock_timeout_statement(configured_lock_timeout()))
            connection.commit()
            context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                              transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.config.config_file_name is not None:
    # Only for a developer's alembic.ini; a programmatic run keeps the application's logging.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
