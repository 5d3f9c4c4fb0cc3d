"""The database's errors as the workers see them: unavailable (retry) or permanent (park)."""
from __future__ import annotations

import psycopg.errors
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)

from erp_sync.shared.db import check_database, translate_db_error
from erp_sync.shared.errors import DatabaseOutOfReach, DatabaseUnavailable, PermanentError, RowLockTimeout


def test_check_database_reports_an_unreachable_database() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/erp_sync")

    with pytest.raises(DatabaseUnavailable) as unavailable:
        check_database(engine)

    assert isinstance(unavailable.value.__cause__, OperationalError)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")), DatabaseOutOfReach),
        (InterfaceError("SELECT 1", {}, psycopg.InterfaceError("connection closed")), DatabaseOutOfReach),
        (OperationalError("SELECT", {}, psycopg.errors.AdminShutdown("terminating connection")), DatabaseOutOfReach),
        (OperationalError("SELECT", {}, psycopg.errors.CannotConnectNow("starting up")), DatabaseOutOfReach),
        (OperationalError("SELECT", {}, psycopg.errors.ConnectionFailure("connection failure")), DatabaseOutOfReach),
        (DBAPIError("SELECT", {}, psycopg.errors.InternalError_("lost"), connection_invalidated=True),
         DatabaseOutOfReach),
        # the server answered: the next statement may well pass (another message's, a smaller one)
        (OperationalError("SELECT", {}, psycopg.errors.QueryCanceled("statement timeout")), DatabaseUnavailable),
        (OperationalError("INSERT", {}, psycopg.errors.DiskFull("no space left")), DatabaseUnavailable),
        (DisconnectionError("connection invalidated"), DatabaseUnavailable),
        (OperationalError("UPDATE", {}, psycopg.errors.SerializationFailure("retry")), DatabaseUnavailable),
        (OperationalError("UPDATE", {}, psycopg.errors.DeadlockDetected("deadlock")), DatabaseUnavailable),
        (DBAPIError("UPDATE", {}, psycopg.errors.SerializationFailure("retry")), DatabaseUnavailable),
        (OperationalError("SELECT", {}, psycopg.errors.LockNotAvailable("lock timeout")), RowLockTimeout),
        (IntegrityError("INSERT", {}, psycopg.errors.CheckViolation("ck")), PermanentError),
        (DataError("INSERT", {}, psycopg.errors.NumericValueOutOfRange("overflow")), PermanentError),
    ],
)
def test_database_errors_map_to_retry_or_park(error: Exception, expected: type[Exception]) -> None:
    translated = translate_db_error(error)

    assert type(translated) is expected


def test_a_lock_timeout_says_a_row_was_locked_not_that_the_database_is_down() -> None:
    error = OperationalError("SELECT", {}, psycopg.errors.LockNotAvailable(
        "canceling statement due to lock timeout"))

    translated = translate_db_error(error)

    # still the retry path, in words that send no one to look at PostgreSQL
    assert isinstance(translated, DatabaseUnavailable)
    assert str(translated).startswith("a row stayed locked by another transaction past DATABASE_LOCK_TIMEOUT_MS")
    assert "unavailable" not in str(translated)
