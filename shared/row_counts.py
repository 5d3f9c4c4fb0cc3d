"""Counts of rows by a column's value (orders by status, released holds by reason), read without a scan.

Migration 0021's triggers append each change of a counted table to `row_count_changes`; reading
folds them into `row_counts` on the way (one reader at a time folds: the others read past it). A
read is one statement, so it sees one snapshot: the counts before its own fold, changes included,
exact whatever folds commit meanwhile. Plain SQL, run through SQLAlchemy's driver-level execute by
/metrics and the console, and through psycopg by the reconcile worker, whose fold keeps the changes
few where nothing scrapes. `reconcile --history` reads without folding: it may run read-only.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

import psycopg

from erp_sync.shared.pg import connect, translate_pg_error

ORDERS: Final = "orders"
STOCK_HOLDS_RELEASED: Final = "stock_holds_released"
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
    counts = {str(key): int(n) for key, n in conn.exec_driver_sql(statement, FOLD_PARAMETERS | {"counted": counted})}
    return {key: counts[key] for key in sorted(counts) if counts[key]}


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
