"""Orders by status and released holds by reason, counted as they change rather than at every read.

/metrics, the console and `reconcile --history` counted them with a scan of `orders` and
`stock_holds`, tables that only grow: at a million orders, about 0.3 s of the database a scrape in
each process that serves /metrics (bench.scrape). Triggers now append each change to
`row_count_changes` (appends never wait on one another, where one counter row would serialize every
push), and a reader folds them into `row_counts` now and then (shared/row_counts.py). The triggers
see every writer: the workers, an earlier release's during a rolling update, and an operator's hand.

`row_counts` starts from the tables' counts, taken while both are locked against writes (SHARE ROW
EXCLUSIVE, as CREATE TRIGGER takes anyway), so that no change falls between the count and the
triggers. The lock waits at most the migrations' lock timeout (shared/migrations/locks.py) for
transactions under way that wrote to either table (the orders probe's re-send claims them while it
asks the ERP; a push's lock of its order while the ERP answers is no write, and does not), new
writers queued behind it meanwhile; past that, or in a deadlock with a push rejected meanwhile (it
writes the holds, then the order), the revision rolls back and `erp-sync migrate` tries it again.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 00:00:00
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from erp_sync.shared.row_counts import FOLD_LOCK_KEY

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class Counted(NamedTuple):
    """A table's rows counted by the value of one column (`key`); rows whose key is null are not counted."""

    name: str
    table: str
    key: str

    def functions(self) -> dict[str, str]:
        """Each trigger function's name and its body (PL/pgSQL, before `RETURN NULL`)."""
        insert = "INSERT INTO row_count_changes (counted, key, n)"
        by_key = f"FROM affected WHERE {self.key} IS NOT NULL GROUP BY {self.key}"
        return {
            f"count_{self.name}_added": f"{insert} VALUES ('{self.name}', NEW.{self.key}, 1);",
            f"count_{self.name}_removed": f"{insert} SELECT '{self.name}', {self.key}, -count(*) {by_key};",
            f"count_{self.name}_changed": (
                f"{insert} SELECT '{self.name}', key, n\n"
                f"  FROM (VALUES (OLD.{self.key}, -1), (NEW.{self.key}, 1)) AS change (key, n) WHERE key IS NOT NULL;"),
            # After a fold under way has committed: its rows are then there to delete, not left behind.
            f"count_{self.name}_emptied": (f"PERFORM pg_advisory_xact_lock({FOLD_LOCK_KEY});\n"
                                           f"DELETE FROM row_counts WHERE counted = '{self.name}';\n"
                                           f"DELETE FROM row_count_changes WHERE counted = '{self.name}';"),
        }

    def triggers(self) -> dict[str, str]:
        """Each trigger's name and the rest of its CREATE TRIGGER statement."""
        # Inserts and updates per row, behind a WHEN test, which costs no function call: a hold is
        # inserted open and calls none. An order's life (inserted, two holds, synced, holds ended)
        # costs the database about 30 µs more (bench.scrape); statement triggers with transition
        # tables for the inserts cost half as much again for an order at a time. Deletes (an
        # operator's, and their cascades) a statement at a time.
        return {
            f"trg_{self.table}_count_added": f"AFTER INSERT ON {self.table} FOR EACH ROW "
                                             f"WHEN (NEW.{self.key} IS NOT NULL) "
                                             f"EXECUTE FUNCTION count_{self.name}_added()",
            f"trg_{self.table}_count_removed": f"AFTER DELETE ON {self.table} REFERENCING OLD TABLE AS affected "
                                               f"FOR EACH STATEMENT EXECUTE FUNCTION count_{self.name}_removed()",
            f"trg_{self.table}_count_changed": f"AFTER UPDATE OF {self.key} ON {self.table} FOR EACH ROW "
                                               f"WHEN (OLD.{self.key} IS DISTINCT FROM NEW.{self.key}) "
                                               f"EXECUTE FUNCTION count_{self.name}_changed()",
            f"trg_{self.table}_count_emptied": f"AFTER TRUNCATE ON {self.table} "
                                               f"FOR EACH STATEMENT EXECUTE FUNCTION count_{self.name}_emptied()",
        }


COUNTED = (Counted("orders", "orders", "status"), Counted("stock_holds_released", "stock_holds", "release_reason"))


def upgrade() -> None:
    """The two tables, the triggers, then the counts as the tables stand."""
    op.create_table(
        "row_counts",
        sa.Column("counted", sa.String(50), primary_key=True),
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "row_count_changes",
        sa.Column("counted", sa.String(50), nullable=False),
        sa.Column("key", sa.String(50), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    # Emptied by every fold, and left to autovacuum's truncation, though it locks out the writers:
    # it gives the lock up within 20 ms to anyone waiting. Without it the empty pages of a burst
    # stay, and every read scans them (vacuum_truncate = false: 116 ms a scrape after a million
    # orders were loaded, against 5–7 ms).
    for counted in COUNTED:
        for function, body in counted.functions().items():
            op.execute(f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                       f"BEGIN\n{body}\nRETURN NULL;\nEND;\n$$")
    _lock_counted_tables("SHARE ROW EXCLUSIVE")
    for counted in COUNTED:
        for trigger, definition in counted.triggers().items():
            op.execute(f"CREATE TRIGGER {trigger} {definition}")
        op.execute(f"INSERT INTO row_counts (counted, key, n) SELECT '{counted.name}', {counted.key}, count(*) "
                   f"FROM {counted.table} WHERE {counted.key} IS NOT NULL GROUP BY {counted.key}")


def downgrade() -> None:
    _lock_counted_tables("ACCESS EXCLUSIVE")  # DROP TRIGGER's, taken with the same patience
    for counted in COUNTED:
        for trigger in counted.triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {counted.table}")
        for function in counted.functions():
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table("row_count_changes")
    op.drop_table("row_counts")


def _lock_counted_tables(mode: str) -> None:
    op.execute(f"LOCK TABLE {', '.join(counted.table for counted in COUNTED)} IN {mode} MODE")
