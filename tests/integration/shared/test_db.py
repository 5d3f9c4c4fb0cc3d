"""The engine's pooled connections: one PostgreSQL dropped while it sat idle is replaced unseen; its lock timeout."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from erp_sync.shared import db
from erp_sync.shared.db import make_engine
from erp_sync.shared.settings import MAX_PG_TIMEOUT_MS


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database_url, pool_size=1)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(db_engine: Engine, pid: int) -> None:
    with db_engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        connection.commit()


def test_a_connection_dropped_while_idle_is_replaced_before_use(engine, db_engine, monkeypatch):
    # given a pooled connection that PostgreSQL ends while it sits idle (a restart, a firewall)
    first = backend_pid(engine)
    terminate(db_engine, first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)

    # when the engine is used again, then it answers on a new connection, without an error
    assert backend_pid(engine) != first


def test_a_connection_dropped_just_after_use_fails_as_a_lost_database_and_the_next_use_works(engine, db_engine):
    # given a connection ended by PostgreSQL a moment after it was given back (no check then)
    first = backend_pid(engine)
    terminate(db_engine, first)

    # when it is used, the statement fails as with a database lost mid-transaction
    with pytest.raises(OperationalError) as failure:
        backend_pid(engine)
    assert isinstance(db.translate_db_error(failure.value), db.DatabaseUnavailable)

    # and the next use gets a new connection
    assert backend_pid(engine) != first


def test_work_one_at_a_time_stays_on_the_connection_used_last(migrated_database_url):
    # given an engine whose pool holds three connections, all used at once by a burst
    engine = make_engine(migrated_database_url, pool_size=3, max_overflow=0)
    try:
        held = [engine.connect() for _ in range(3)]
        pids = [int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()) for connection in held]
        for connection in held:
            connection.close()

        # when the work goes on one unit at a time, then each unit gets the connection given back
        # last: the others sit idle and are not pinged or rotated through (their backends stay cold)
        assert [backend_pid(engine) for _ in range(4)] == [pids[-1]] * 4
    finally:
        engine.dispose()


def test_a_statement_run_through_the_driver_is_part_of_the_sessions_transaction(engine):
    sessions = db.make_session_factory(engine)
    with sessions() as session:
        session.begin()
        # when a row is written through the driver and the transaction rolled back
        db.driver_execute(session, "CREATE TEMP TABLE t (n int) ON COMMIT DROP", {})
        db.driver_execute(session, "INSERT INTO t VALUES (%(n)s)", {"n": 7})
        # then SQLAlchemy sees it in the same transaction
        assert session.execute(text("SELECT n FROM t")).scalar_one() == 7
        assert db.driver_execute(session, "SELECT n, n + 1 FROM t", {}) == [(7, 8)]
        session.rollback()


def test_a_statement_through_the_driver_fails_as_our_errors_and_a_lost_connection_is_replaced(engine, db_engine):
    sessions = db.make_session_factory(engine)
    # a statement that can never succeed is permanent
    with sessions() as session, pytest.raises(db.PermanentError, match="division by zero"):
        db.driver_execute(session, "SELECT 1 / %(zero)s", {"zero": 0})

    # a connection ended by PostgreSQL is a lost database, and the next session works on a new one
    first = backend_pid(engine)
    terminate(db_engine, first)
    with sessions() as session, pytest.raises(db.DatabaseUnavailable):
        db.driver_execute(session, "SELECT pg_backend_pid()", {})
    with sessions() as session:
        [(pid,)] = db.driver_execute(session, "SELECT pg_backend_pid()", {})
    assert pid != first


def test_the_longest_lock_timeout_the_settings_accept_is_one_postgresql_takes(migrated_database_url):
    # given an engine with the largest DATABASE_LOCK_TIMEOUT_MS the settings let through
    engine = make_engine(migrated_database_url, pool_size=1, lock_timeout_ms=MAX_PG_TIMEOUT_MS)
    try:
        # when it connects, then PostgreSQL takes the value (one more, it refuses every connection)
        with engine.connect() as connection:
            assert connection.execute(text("SHOW lock_timeout")).scalar_one() == f"{MAX_PG_TIMEOUT_MS}ms"
    finally:
        engine.dispose()
