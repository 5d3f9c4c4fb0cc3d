"""Migrations under live traffic: each waits briefly for its tables' locks, and `erp-sync migrate` tries again."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from erp_sync.shared.migrate import MigrationHeldOff, alembic_config, create_database_if_missing, upgrade_schema
from erp_sync.shared.migrations.locks import LOCK_TIMEOUT_ATTRIBUTE
from tests.support.services import database_not_yet_created, libpq_url

LOCK_TIMEOUT = "200ms"
WRITER_OPEN_S = 2.0
# Far from both LOCK_TIMEOUT and WRITER_OPEN_S: a revision that took longer waited for the writer.
WAITED_S = 1.0
# They build or drop indexes CONCURRENTLY, which holds up no writer and waits as long as it must.
WAIT_FOR_WRITERS = {"0005", "0006"}


@contextmanager
def writer_of_every_table(libpq: str, open_s: float) -> Iterator[psycopg.Connection]:
    """A transaction holding what one that wrote to every table holds, ended after `open_s` (or on leaving)."""
    writer = psycopg.connect(libpq)
    tables = [name for (name,) in writer.execute(
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
    if tables:
        writer.execute(f"LOCK TABLE {', '.join(tables)} IN ROW EXCLUSIVE MODE")
    ending = threading.Timer(open_s, writer.rollback)
    ending.start()
    try:
        yield writer
    finally:
        ending.cancel()
        writer.close()


def test_every_revision_gives_up_on_a_table_in_use_within_its_wait_and_applies_once_it_is_free(database_url):
    # given a new database, brought up one revision at a time, each while a transaction that wrote
    # to every table it has stays open
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        libpq = libpq_url(target)
        config = alembic_config(target)
        config.attributes[LOCK_TIMEOUT_ATTRIBUTE] = LOCK_TIMEOUT
        revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()][::-1]
        held_off, waited_for_the_writer = set(), set()
        for revision in revisions:
            # when the revision is applied meanwhile
            with writer_of_every_table(libpq, WRITER_OPEN_S):
                started = time.monotonic()
                try:
                    command.upgrade(config, revision)
                except OperationalError as exc:
                    assert "lock timeout" in str(exc)
                    held_off.add(revision)
                if time.monotonic() - started >= WAITED_S:
                    waited_for_the_writer.add(revision)
            # and again once the writer is gone, if it was held off
            command.upgrade(config, revision)
            with psycopg.connect(libpq) as conn:
                assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (revision,)

        # then the revisions that change a table in use gave up within their wait, and only the
        # index builds waited for the writer, each completing
        assert held_off >= {"0003", "0004", "0007", "0017", "0019", "0020", "0021"}
        assert waited_for_the_writer == WAIT_FOR_WRITERS
        assert not held_off & WAIT_FOR_WRITERS
        with psycopg.connect(libpq) as conn:
            assert conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid").fetchall() == []


@contextmanager
def database_at(database_url: str, revision: str) -> Iterator[str]:
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        command.upgrade(alembic_config(target), revision)
        yield target


def test_migrate_tries_again_once_the_transaction_in_the_way_has_ended(database_url, caplog):
    # given a database at 0002 and a transaction on reconciliation_runs, which 0003 alters, that
    # ends a second later
    with database_at(database_url, "0002") as target:
        with writer_of_every_table(libpq_url(target), open_s=1.0):
            # when it is migrated meanwhile
            with caplog.at_level(logging.WARNING, logger="erp_sync.shared.migrate"):
                upgrade_schema(target, lock_timeout=LOCK_TIMEOUT)

        # then it said what held it off, tried again, and is at head
        assert any("waited 200ms for a table's lock" in record.getMessage()
                   and "ALTER TABLE reconciliation_runs" in record.getMessage()
                   and "trying again" in record.getMessage() for record in caplog.records)
        head = ScriptDirectory.from_config(alembic_config(target)).get_current_head()
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)


def test_a_run_held_off_after_indexes_built_concurrently_keeps_them_and_its_wait(database_url):
    # given a database at 0004, and a transaction on processed_events (which 0007 alters) that
    # stays open; 0005 and 0006 build indexes concurrently on other tables
    with database_at(database_url, "0004") as target, psycopg.connect(libpq_url(target)) as writer:
        writer.execute("LOCK TABLE processed_events IN ROW EXCLUSIVE MODE")
        ending = threading.Timer(30.0, writer.rollback)
        ending.start()
        try:
            # when it is migrated meanwhile, with one try
            started = time.monotonic()
            with pytest.raises(MigrationHeldOff, match="ALTER TABLE processed_events"):
                upgrade_schema(target, tries=1, lock_timeout=LOCK_TIMEOUT)
            waited_s = time.monotonic() - started
        finally:
            ending.cancel()
            writer.rollback()

        # then 0007 gave up within its wait, after the index builds, which stay with their revisions
        assert waited_s < WAITED_S * 5
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0006",)
            assert conn.execute("SELECT count(*) FROM pg_index WHERE indexrelid::regclass::text IN "
                                "('ix_orders_unsettled_since', 'ix_stock_changes_applied_deltas') AND indisvalid"
                                ).fetchone() == (2,)

        # and once the transaction is done, the next run goes on from there to head
        upgrade_schema(target, lock_timeout=LOCK_TIMEOUT)
        head = ScriptDirectory.from_config(alembic_config(target)).get_current_head()
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)


def test_migrate_held_off_at_every_try_says_so_and_leaves_the_revision_it_was_on_undone(database_url):
    # given a database at 0002 and a transaction on reconciliation_runs that stays open
    with database_at(database_url, "0002") as target:
        with writer_of_every_table(libpq_url(target), open_s=60.0):
            # when it is migrated meanwhile, with two tries
            with pytest.raises(MigrationHeldOff) as held_off:
                upgrade_schema(target, tries=2, lock_timeout=LOCK_TIMEOUT)

        # then the error names the statement, the tries and what to do, and 0003 is not applied
        assert "ALTER TABLE reconciliation_runs" in str(held_off.value)
        assert "held off 2 times" in str(held_off.value)
        assert "rolled back" in str(held_off.value)
        assert "run `erp-sync migrate` again" in str(held_off.value)
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0002",)
            columns = conn.execute("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_name = 'reconciliation_runs' AND column_name = 'scheduled_for'")
            assert columns.fetchall() == []
