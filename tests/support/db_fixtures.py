"""Database fixtures: the run's database migrated once, and a rolled-back session per test."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from erp_sync.shared.db import make_engine
from erp_sync.shared.migrate import upgrade_schema


@pytest.fixture(scope="session")
def migrated_database_url(database_url: str) -> str:
    """The run's private database, migrated to the newest revision."""
    upgrade_schema(database_url)
    return database_url


@pytest.fixture(scope="session")
def db_engine(migrated_database_url: str) -> Iterator[Engine]:
    """One engine on the migrated database for the whole run."""
    engine = make_engine(migrated_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session whose commits become savepoints inside a transaction rolled back at the end."""
    connection = db_engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


BUSINESS_TABLES = (
    "reconciliation_corrections", "reconciliation_runs", "stock_holds", "order_lines", "orders",
    "media", "variants", "product_groups", "categories", "stock_changes", "stock_levels", "processed_events",
)


@pytest.fixture
def committed_session(db_engine: Engine) -> Iterator[Session]:
    """A plain session whose commits are real (for tests across processes); tables emptied before and after.

    Before too: a test whose processes wrote without this fixture would otherwise hand its rows to
    the next one (a figure stamped seconds ago outranks the next test's own).
    """
    empty_business_tables(db_engine)
    session = Session(db_engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        empty_business_tables(db_engine)


def empty_business_tables(engine: Engine) -> None:
    with engine.begin() as connection:
        # A process of an earlier test still holding a lock fails this test with a lock timeout instead of hanging it.
        connection.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        connection.exec_driver_sql(f"TRUNCATE {', '.join(BUSINESS_TABLES)} RESTART IDENTITY CASCADE")
