"""The database plumbing: engine, sessions, the declarative base and its column types."""
from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import psycopg
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Connection, DateTime, Engine, MetaData, Numeric, create_engine, event, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from erp_sync.shared.errors import DatabaseUnavailable, PermanentError
from erp_sync.shared.pg import connect_args, conninfo, error_summary, translate_pg_error

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

# Where plain statements run: a Session, or a Core Connection without the Session's bookkeeping.
SessionOrConnection = Session | Connection

# SQLAlchemy's own errors that say the database cannot be reached, without a driver error inside.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)


class Base(DeclarativeBase):
    """Declarative base of every erp-sync table; Alembic compares against its metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        Decimal: Numeric(12, 2),
        dict[str, Any]: JSONB,
    }


CreatedAt = Annotated[datetime, mapped_column(DateTime(timezone=True), server_default=func.now())]
# onupdate covers ORM flushes and Core update(); an INSERT .. ON CONFLICT DO UPDATE must set it.
UpdatedAt = Annotated[
    datetime, mapped_column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now())
]
Money = Annotated[Decimal, mapped_column(Numeric(12, 2))]


def psycopg_url(database_url: str) -> URL:
    """The URL with the psycopg 3 driver, whatever PostgreSQL scheme it was given with."""
    return make_url(conninfo(database_url)).set(drivername="postgresql+psycopg")


DEFAULT_POOL_SIZE = 5
# Connections an engine opens beyond its pool under load, closed again when given back.
MAX_OVERFLOW = 10
# A pooled connection idle for longer than this is checked with a round trip before use. One given
# back a moment ago is not: a busy worker's check was a seventh of a small stock batch's round
# trips, and a connection lost since fails its transaction as a lost database does anyway.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "erp_sync.idle_since"


def make_engine(database_url: str, pool_size: int = DEFAULT_POOL_SIZE, lock_timeout_ms: int | None = None,
                *, max_overflow: int = MAX_OVERFLOW, statement_timeout_ms: int | None = None) -> Engine:
    """An engine on psycopg 3 whose pooled connections are checked before use after sitting idle.

    `pool_size` connections stay open once opened; up to `max_overflow` more are opened when needed
    and closed when given back, so it should cover the threads that use the database at the same
    time. `lock_timeout_ms` and `statement_timeout_ms` set PostgreSQL's on every connection.
    """
    engine = create_engine(
        psycopg_url(database_url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=10,
        # Recycle before firewalls and PgBouncer drop idle connections under us.
        pool_recycle=1800,
        # The connection given back last is the next one out: at a few units of work a second one
        # stays warm (its backend in the CPU's caches, no idle check) while the rest sit unused,
        # where a queue would rotate through all of them. PostgreSQL's CPU an order, at 50/s: -10%.
        pool_use_lifo=True,
        connect_args=connect_args(lock_timeout_ms, statement_timeout_ms),
    )
    event.listen(engine, "connect", _send_lists_in_binary)
    event.listen(engine, "checkin", _mark_idle)
    event.listen(engine, "checkout", _ping_if_idle(engine))
    return engine


def _send_lists_in_binary(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # The stock, catalog and orders statements take their rows as arrays. psycopg's default text
    # form quotes every element in Python: a fifth of a stock or catalog batch's CPU. Its binary
    # form (also psycopg's own) costs a quarter of that, and PostgreSQL reads it without parsing.
    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def _mark_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Any:
    def ping(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection) -> None:
        # A fresh connection has no mark: it has just answered.
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since <= PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool drops this connection and checks out another (SQLAlchemy's pessimistic recipe).
            raise DisconnectionError(str(exc)) from exc

    return ping


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (a worker logs them after acking)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine a make_session_factory's sessions are bound to."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    return engine


def check_database(engine: Engine) -> None:
    """Run `SELECT 1`; raise DatabaseUnavailable when PostgreSQL does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc


def translate_db_error(exc: BaseException) -> DatabaseUnavailable | PermanentError:
    """Map a database exception, SQLAlchemy's or psycopg's, onto our tree: transient (retry) or permanent (park)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return translate_pg_error(exc.orig, connection_lost=exc.connection_invalidated)
    if isinstance(exc, UNAVAILABLE):
        return DatabaseUnavailable(f"database unavailable: {error_summary(exc)}")
    return translate_pg_error(exc)


def driver_execute(scope: SessionOrConnection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement (psycopg's `%(name)s` placeholders) on the scope's connection, in its transaction; its rows.

    For the few statements run once per message: SQLAlchemy's execution context costs about 0.1 ms
    a statement, psycopg's own execute half of that. A failure is our error tree's, as
    `translate_db_error` gives it; a connection lost with it is invalidated, as SQLAlchemy does
    for its own statements, so that the pool replaces it.
    """
    connection = scope.connection() if isinstance(scope, Session) else scope
    driver_connection: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    try:
        cursor = driver_connection.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []
    except psycopg.Error as exc:
        if driver_connection.broken:
            connection.invalidate(exc)
        raise translate_pg_error(exc, connection_lost=driver_connection.broken) from exc
