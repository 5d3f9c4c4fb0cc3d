"""The database plumbing: engine, sessions, the declarative base and its column types."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import psycopg
from sqlalchemy import DateTime, Engine, MetaData, Numeric, create_engine, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker

from shared.errors import DatabaseUnavailable, PermanentError

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

# PostgreSQL asks the client to run the transaction again: serialization failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


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
    if database_url.startswith("postgres://"):
        database_url = "postgresql://" + database_url.removeprefix("postgres://")
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(database_url: str) -> Engine:
    """An engine on psycopg 3 whose pooled connections are checked before use."""
    return create_engine(
        psycopg_url(database_url),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=10,
        # Recycle before firewalls and PgBouncer drop idle connections under us.
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": "erp-sync"},
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (a worker logs them after acking)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_database(engine: Engine) -> None:
    """Run `SELECT 1`; raise DatabaseUnavailable when PostgreSQL does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc


def translate_db_error(exc: BaseException) -> DatabaseUnavailable | PermanentError:
    """Map a database exception onto our tree: transient (retry) or permanent (park)."""
    sqlstate = _sqlstate(exc)
    detail = f"[{sqlstate}] {_summary(exc)}" if sqlstate else _summary(exc)
    if sqlstate in RETRYABLE_SQLSTATES:
        return DatabaseUnavailable(f"database asked for a retry: {detail}")
    if isinstance(exc, IntegrityError | DataError | psycopg.IntegrityError | psycopg.DataError):
        return PermanentError(f"database refused the data: {detail}")
    if isinstance(exc, UNAVAILABLE):
        return DatabaseUnavailable(f"database unavailable: {detail}")
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable(f"database connection lost: {detail}")
    return PermanentError(f"database error: {detail}")


def _sqlstate(exc: BaseException) -> str | None:
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(original, "sqlstate", None)
    return state if isinstance(state, str) else None


def _summary(exc: BaseException) -> str:
    # The DBAPI message without SQLAlchemy's appended statement and parameters.
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
