"""PostgreSQL through psycopg alone: connections and error mapping without SQLAlchemy.

The sweep's process uses only this; its peak memory is a target, and SQLAlchemy's import alone
would take it past. shared/db.py builds its engine and its error mapping on the same pieces.
"""
from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from erp_sync.shared.errors import ConfigurationError, DatabaseOutOfReach, DatabaseUnavailable, PermanentError, RowLockTimeout

# Every connection erp-sync opens, through SQLAlchemy or not. A database that stops answering
# without a word (a failed-over primary, a network partition) would otherwise hold a query for
# TCP's own 15 minutes: what is sent and not acknowledged for 10 s, or an idle connection whose
# peer answers no keepalive probe after 30 s, ends the connection instead (DatabaseUnavailable,
# then retried). On Linux the user timeout bounds the probes too: an idle connection ends about
# 40 s after its peer went, before the third probe. Set here, they override a DATABASE_URL's own.
CONNECT_ARGS: dict[str, Any] = {"connect_timeout": 5, "application_name": "erp-sync", "tcp_user_timeout": 10_000,
                                "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                                "keepalives_count": 3}


def connect_args(lock_timeout_ms: int | None = None, statement_timeout_ms: int | None = None) -> dict[str, Any]:
    """CONNECT_ARGS, and PostgreSQL's lock_timeout and statement_timeout on the connection, each when given."""
    args = dict(CONNECT_ARGS)
    options = [f"-c {name}={value}" for name, value in (("lock_timeout", lock_timeout_ms),
                                                        ("statement_timeout", statement_timeout_ms))
               if value is not None]
    if options:
        args["options"] = " ".join(options)
    return args


# PostgreSQL asks the client to run the transaction again: serialization failure, deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out
# The server ends or refuses connections: shutting down (by an administrator, after a crash) or starting.
SHUTTING_DOWN_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
CONNECTION_EXCEPTION_CLASS = "08"


_QUOTED = re.compile(r'"[^"]*"')
# What PostgreSQL answers a connection it refuses for good, as libpq hands it on (no SQLSTATE comes
# with it). A server whose lc_messages is not English says it otherwise: it is then taken for one
# out of reach.
_REFUSED_FOR_GOOD = re.compile(r'FATAL:  (database "[^"]*" does not exist|role "[^"]*" does not exist'
                               r'|password authentication failed for user "[^"]*"|no pg_hba\.conf entry[^\n]*)')


def conninfo(database_url: str) -> str:
    """DATABASE_URL as libpq takes it: `postgresql+psycopg://` (or `postgres://`) becomes `postgresql://`."""
    scheme, separator, rest = database_url.partition("://")
    if not separator or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://...")
    return f"postgresql://{rest}"


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
    """A new connection; DatabaseUnavailable when PostgreSQL does not answer."""
    try:
        return psycopg.connect(conninfo(database_url), autocommit=autocommit, **CONNECT_ARGS)
    except psycopg.Error as exc:
        raise unreadable_url(exc, database_url) or translate_pg_error(exc) from exc


def unreadable_url(exc: psycopg.Error, database_url: str) -> ConfigurationError | None:
    """The ConfigurationError for a URL libpq cannot read, its password left out; None for any other error."""
    if not isinstance(exc, psycopg.ProgrammingError) or exc.sqlstate is not None:
        return None
    # libpq quotes the part it could not read, which may hold the password: no quoted part is shown.
    detail = _QUOTED.sub('"…"', error_summary(exc))
    return ConfigurationError(f"DATABASE_URL: {detail} (a % or an @ in the password is written %25 or %40)")


def refused_for_good(exc: BaseException) -> ConfigurationError | None:
    """The ConfigurationError for a connection the server refuses whatever the retries (no such
    database, role or password, no pg_hba.conf entry); None for any other error. `exc` may be
    psycopg's or SQLAlchemy's wrapping of it."""
    if refused := _REFUSED_FOR_GOOD.search(str(exc)):
        return ConfigurationError(f"PostgreSQL refuses DATABASE_URL: {refused.group(1)}")
    return None


def translate_pg_error(exc: BaseException, *, connection_lost: bool = False) -> DatabaseUnavailable | PermanentError:
    """Map a psycopg exception onto our tree: transient (retry) or permanent (park).

    `connection_lost`: the caller knows the connection died with the error (SQLAlchemy invalidated it).
    """
    state = getattr(exc, "sqlstate", None)
    sqlstate = state if isinstance(state, str) else None
    detail = f"[{sqlstate}] {error_summary(exc)}" if sqlstate else error_summary(exc)
    if sqlstate in RETRYABLE_SQLSTATES:
        return DatabaseUnavailable(f"database asked for a retry: {detail}")
    if sqlstate == LOCK_NOT_AVAILABLE:
        # The database is up: another worker's transaction (an order's push in flight, a large batch)
        # holds what this one needs. "database unavailable" sent people to look at PostgreSQL.
        return RowLockTimeout(f"a row stayed locked by another transaction past DATABASE_LOCK_TIMEOUT_MS: {detail}")
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return PermanentError(f"database refused the data: {detail}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        error = DatabaseOutOfReach if _out_of_reach(sqlstate, connection_lost) else DatabaseUnavailable
        return error(f"database unavailable: {detail}")
    if connection_lost:
        return DatabaseOutOfReach(f"database connection lost: {detail}")
    return PermanentError(f"database error: {detail}")


def _out_of_reach(sqlstate: str | None, connection_lost: bool) -> bool:
    # No SQLSTATE: the client gave up (refused, timed out, closed); the server sent none.
    return (connection_lost or sqlstate is None or sqlstate.startswith(CONNECTION_EXCEPTION_CLASS)
            or sqlstate in SHUTTING_DOWN_SQLSTATES)


def error_summary(exc: BaseException) -> str:
    """The error's first line (the server's message without its detail and hint lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
