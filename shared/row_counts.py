"""Counts of rows by a column's value (orders by status, released holds by reason), read without a scan.

Migration 0021's triggers append each change of a counted table to `row_count_changes`; reading
folds them into `row_counts` on the way (one reader at a time folds: the others read past it). A
read is one statement, so it sees one snapshot: the counts before its own fold, changes included,
exact whatever folds commit meanwhile. Plain SQL, run through SQLAlchemy's driver-level execute by
/metrics and the console, and through psycopg by the reconcile worker, whose fold keeps the changes
few where nothing scrapes, and whose check counts again what a load with the triggers off left behind.
`reconcile --history` reads without folding: it may run read-only.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import psycopg
from psycopg import IsolationLevel

from erp_sync.shared.errors import TransientError
from erp_sync.shared.pg import connect, translate_pg_error

ORDERS: Final = "orders"
STOCK_HOLDS_RELEASED: Final = "stock_holds_released"
# What each count counts, as migration 0021's triggers do: a table's rows by a column (null: not counted).
COUNTED: Final = {ORDERS: ("orders", "status"), STOCK_HOLDS_RELEASED: ("stock_holds", "release_reason")}
# How long a recount waits to hold off a counted table's writers: each new writer queues behind it meanwhile.
RECOUNT_LOCK_TIMEOUT: Final = "2s"
# pg_try_advisory_xact_lock key of the fold; no other lock in erp-sync uses it ("rowcount").
FOLD_LOCK_KEY: Final = 0x726F77636F756E74

_FOLD_STEPS = """
WITH fold_lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(%(fold_lock)s) AS held),
folded AS (DELETE FROM row_count_changes WHERE (SELECT held FROM fold_lock) RETURNING counted, key, n),
kept AS (
    INSERT INTO row_counts AS c (counted, key, n)
    SELECT counted, key, sum(n) FROM folded GROUP BY counted, key
    ON CONFLICT (counted, key) DO UPDATE SET n = c.n + excluded.n)
"""
# How many changes were folded (none while another fold holds the lock).
FOLD: Final = _FOLD_STEPS + "SELECT count(*) FROM folded"
_COUNTED = """
SELECT key, sum(n)::bigint FROM (
    SELECT key, n FROM row_counts WHERE counted = %(counted)s
    UNION ALL
    SELECT key, n FROM row_count_changes WHERE counted = %(counted)s) AS counts
 GROUP BY key
"""
READ: Final = _FOLD_STEPS + _COUNTED
# For a read-only transaction (a standby, a read-only role): the same counts, nothing folded.
READ_ONLY: Final = _COUNTED
FOLD_PARAMETERS: Final = {"fold_lock": FOLD_LOCK_KEY}


class DriverConnection(Protocol):
    """A connection that runs a statement with psycopg's `%(name)s` placeholders (SQLAlchemy's Connection)."""

    def exec_driver_sql(self, statement: str, parameters: Mapping[str, Any]) -> Iterable[Sequence[Any]]: ...


def row_counts(conn: DriverConnection, counted: str, *, fold: bool = True) -> dict[str, int]:
    """How many rows of `counted` there are by key, in key order (keys without rows left out).

    The fold it makes on the way lasts only if the caller commits; rolled back, the counts read are as
    exact. Read them last in a transaction that folds: a TRUNCATE of a counted table waits for the
    fold's commit, and a transaction that went on to read that table would wait for the TRUNCATE.
    """
    statement = READ if fold else READ_ONLY
    return dict(sorted(_as_counts(conn.exec_driver_sql(statement, FOLD_PARAMETERS | {"counted": counted})).items()))


def fold_row_counts(database_url: str) -> int:
    """Fold the changes into the counts, in a transaction of its own; how many (none while another fold runs).

    Raises:
        DatabaseUnavailable: the database could not be reached or failed the statement.
    """
    try:
        with connect(database_url, autocommit=True) as conn:
            row = conn.execute(FOLD, FOLD_PARAMETERS).fetchone()
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc
    return int(row[0]) if row else 0


class RecountHeldOff(TransientError):
    """A writer kept a counted table locked past RECOUNT_LOCK_TIMEOUT; the next try may find it free."""


@dataclass(frozen=True)
class Drift:
    """Counts kept that a scan of the table, in the same snapshot, found otherwise."""

    counted: str
    kept: dict[str, int]
    scanned: dict[str, int]


def drifted_counts(database_url: str) -> list[Drift]:
    """The kept counts that a scan of their tables finds otherwise, in one REPEATABLE READ snapshot.

    They drift only where the triggers did not run: a load with them off (`pg_restore --data-only
    --disable-triggers`, `session_replication_role = replica`). The scans take no lock that holds up
    a writer. A TRUNCATE committed between a count and its scan (TRUNCATE is not MVCC-safe) is
    reported as a drift too; the recount then finds the counts right.

    Raises:
        DatabaseUnavailable: the database could not be reached or failed the scans.
    """
    try:
        with connect(database_url) as conn:
            conn.isolation_level = IsolationLevel.REPEATABLE_READ
            drifts = [drift for counted in COUNTED if (drift := _drift(conn, counted)) is not None]
            conn.rollback()
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc
    return drifts


def recount(database_url: str, counted: str) -> None:
    """Count one table's rows again into its kept counts, its writers held off meanwhile.

    One table a transaction: a push rejected by the ERP writes its holds and then its order, so
    locking both tables at once could deadlock with it. The lock waits at most RECOUNT_LOCK_TIMEOUT,
    every writer queued behind it meanwhile.

    Raises:
        RecountHeldOff: a writer kept the table past RECOUNT_LOCK_TIMEOUT; nothing changed.
        DatabaseUnavailable: the database could not be reached or failed the recount.
    """
    table, _ = COUNTED[counted]
    try:
        with connect(database_url) as conn:
            conn.execute(f"SET LOCAL lock_timeout = '{RECOUNT_LOCK_TIMEOUT}'")
            conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            conn.execute("SELECT pg_advisory_xact_lock(%(fold_lock)s)", FOLD_PARAMETERS)  # a fold under way ends first
            conn.execute("DELETE FROM row_counts WHERE counted = %(counted)s", {"counted": counted})
            conn.execute("DELETE FROM row_count_changes WHERE counted = %(counted)s", {"counted": counted})
            conn.execute(f"INSERT INTO row_counts (counted, key, n) SELECT %(counted)s, key, n FROM ({_scan(counted)}) "
                         f"AS s", {"counted": counted})
    except psycopg.errors.LockNotAvailable as exc:
        message = f"a writer kept {table} past {RECOUNT_LOCK_TIMEOUT}; its counts were not counted again"
        raise RecountHeldOff(message) from exc
    except psycopg.Error as exc:
        raise translate_pg_error(exc) from exc


def _drift(conn: psycopg.Connection[Any], counted: str) -> Drift | None:
    kept = _as_counts(conn.execute(READ_ONLY, {"counted": counted}).fetchall())
    scanned = _as_counts(conn.execute(_scan(counted)).fetchall())
    return None if kept == scanned else Drift(counted, kept, scanned)


def _scan(counted: str) -> str:
    table, key = COUNTED[counted]
    return f"SELECT {key} AS key, count(*) AS n FROM {table} WHERE {key} IS NOT NULL GROUP BY {key}"


def _as_counts(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    return {str(key): int(n) for key, n in rows if n}
