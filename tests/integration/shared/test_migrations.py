"""The packaged Alembic migrations: idempotent, in step with the models, able to create the database."""
from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

import erp_sync.shared.models  # noqa: F401  (fills Base.metadata)
from erp_sync.shared.db import Base, make_engine
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.migrate import alembic_config, create_database_if_missing, upgrade_schema
from tests.support.pg_front import postgres_front
from tests.support.services import database_not_yet_created, libpq_url


def test_upgrading_twice_is_harmless(migrated_database_url: str, db_engine: Engine) -> None:
    # given a database already at head
    head = ScriptDirectory.from_config(alembic_config(migrated_database_url)).get_current_head()

    # when it is upgraded again
    upgrade_schema(migrated_database_url)

    # then it is still at head
    with db_engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head


INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'alembic_version' ORDER BY 1"


def test_migrated_schema_matches_the_models(db_engine: Engine) -> None:
    # given the migrated database
    with db_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})

        # when autogenerate compares it with the models
        differences = compare_metadata(context, Base.metadata)

    # then there is nothing to migrate
    assert differences == []


def test_migrated_indexes_are_the_models_to_their_predicates(database_url: str, db_engine: Engine) -> None:
    # given a database made from the models alone, beside the migrated one
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        engine = make_engine(target)
        try:
            Base.metadata.create_all(engine)
        finally:
            engine.dispose()

        # when their indexes are read as PostgreSQL prints them (autogenerate compares no predicates)
        with psycopg.connect(libpq_url(target)) as conn:
            from_models = conn.execute(INDEXES).fetchall()
        with db_engine.connect() as connection:
            migrated = connection.exec_driver_sql(INDEXES).fetchall()

    # then they are the same, partial indexes' WHERE included
    assert migrated == from_models


def test_an_interrupted_0020_runs_again(database_url: str) -> None:
    # given a database at 0019 where 0020 had added its column and built an index before it stopped
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        command.upgrade(alembic_config(target), "0019")
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            conn.execute("ALTER TABLE processed_events ADD COLUMN dated timestamptz")
            conn.execute("CREATE INDEX ix_processed_events_dated ON processed_events (dated)")

        # when it is migrated again
        command.upgrade(alembic_config(target), "0020")

        # then it is at 0020, with the index as 0020 builds it
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0020",)
            assert conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_processed_events_dated'"
                                ).fetchone() == ("CREATE INDEX ix_processed_events_dated ON public.processed_events "
                                                 "USING btree (dated) WHERE (dated IS NOT NULL)",)


@pytest.mark.parametrize("revision, index, table_and_column", [
    ("0005", "ix_orders_unsettled_since", "orders (order_id)"),
    ("0006", "ix_stock_changes_applied_deltas", "stock_changes (id)"),
    ("0023", "ix_stock_changes_held_back_deltas", "stock_changes (id)"),
])
def test_an_index_build_cut_short_is_built_again(database_url: str, revision: str, index: str,
                                                 table_and_column: str) -> None:
    # (an index of that name on another column, without the revision's WHERE, stands for it)
    # given a database where the revision's concurrent build left an index of its name behind, but
    # not the revision itself (stopped between the two)
    with database_not_yet_created(database_url) as target:
        config = alembic_config(target)
        create_database_if_missing(target)
        command.upgrade(config, f"{int(revision) - 1:04d}")
        with psycopg.connect(libpq_url(target), autocommit=True) as conn:
            conn.execute(f"CREATE INDEX {index} ON {table_and_column}")

        # when it is migrated again
        command.upgrade(config, revision)

        # then the index is the one the revision builds
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (revision,)
            definition = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (index,)).fetchone()
        assert definition is not None and "WHERE" in definition[0]


def test_missing_database_is_created_once(database_url: str) -> None:
    # given a database name nobody uses
    with database_not_yet_created(database_url) as target:
        # when it is asked for twice
        first = create_database_if_missing(target)
        second = create_database_if_missing(target)

        # then the first call created it and the second found it
        assert (first, second) == (True, False)
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (make_url(target).database,)


def test_an_existing_database_is_migrated_where_the_maintenance_database_is_out_of_reach(database_url: str) -> None:
    # given a database that exists, reached through a front that serves no other (PgBouncer, pg_hba.conf)
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        with postgres_front(target) as fronted:
            # when it is asked for and migrated there, then neither needs the `postgres` database
            assert create_database_if_missing(fronted) is False
            upgrade_schema(fronted)


def test_a_missing_database_where_the_maintenance_database_is_out_of_reach_is_the_error(database_url: str) -> None:
    # given a database nobody created, behind a front that serves no `postgres` database to create it from
    with database_not_yet_created(database_url) as target, postgres_front(target) as fronted:
        # when it is asked for, then the error names the database missing, not the maintenance one, as a
        # wrong setting: no retry creates it (the workers say the same of that URL)
        with pytest.raises(ConfigurationError, match=f'database "{make_url(target).database}" does not exist'):
            create_database_if_missing(fronted)


def test_orders_recorded_before_0004_are_numbered_by_when_they_came(database_url: str) -> None:
    # given a database at 0003 holding orders recorded at different times, inserted out of that order
    with database_not_yet_created(database_url) as target:
        libpq = libpq_url(target)
        create_database_if_missing(target)
        command.upgrade(alembic_config(target), "0003")
        with psycopg.connect(libpq) as conn:
            for order_id, recorded in (("ORD-B", "2024-01-02"), ("ORD-C", "2024-01-03"), ("ORD-A", "2024-01-01")):
                conn.execute("INSERT INTO orders (order_id, order_date, customer_ref, status, created_at) "
                             "VALUES (%s, now(), '', 'local_only', %s)", (order_id, recorded))

        # when it is upgraded, and an order comes after
        upgrade_schema(target)
        with psycopg.connect(libpq) as conn:
            conn.execute("INSERT INTO orders (order_id, order_date, customer_ref) VALUES ('ORD-D', now(), '')")
            numbered = conn.execute("SELECT order_id FROM orders ORDER BY arrival").fetchall()

        # then arrival follows when each was recorded, and the new one comes last
        assert [row[0] for row in numbered] == ["ORD-A", "ORD-B", "ORD-C", "ORD-D"]


def test_two_migrations_at_once_both_end_at_head_with_valid_indexes(database_url: str) -> None:
    # given a new database, and two processes told to migrate it at the same moment
    # (processes: Alembic's context is one per process)
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        migrate = [sys.executable, "-c",
                   "import sys; from erp_sync.shared.migrate import upgrade_schema; upgrade_schema(sys.argv[1])", target]

        # when they run (one builds its indexes CONCURRENTLY while the other waits for the lock)
        processes = [subprocess.Popen(migrate, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(process.wait(timeout=120), process.stderr.read() if process.stderr else "")
                   for process in processes]

        # then neither failed nor hung, the schema is at head, and every index is usable
        assert [code for code, _ in results] == [0, 0], results
        head = ScriptDirectory.from_config(alembic_config(target)).get_current_head()
        with psycopg.connect(libpq_url(target)) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head,)
            assert conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() == (0,)


# What a migration puts in the database, read from the catalogs: pg_dump would need its binary, and
# these are the objects the migrations write (column order, defaults, constraint, index, function
# and trigger definitions as PostgreSQL prints them).
SCHEMA_QUERIES = (
    "SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length, is_nullable,"
    " column_default FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2",
    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1",
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2",
    "SELECT proname, pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1",
)


def schema_of(libpq: str) -> list[list[tuple[object, ...]]]:
    with psycopg.connect(libpq) as conn:
        return [conn.execute(query).fetchall() for query in SCHEMA_QUERIES]


def test_every_downgrade_restores_the_schema_its_revision_had(database_url: str) -> None:
    # given the schema at every revision, as a new database is upgraded one revision at a time
    with database_not_yet_created(database_url) as target:
        libpq = libpq_url(target)
        create_database_if_missing(target)
        config = alembic_config(target)
        revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()][::-1]
        upgraded = {}
        for revision in revisions:
            command.upgrade(config, revision)
            upgraded[revision] = schema_of(libpq)

        # when it is downgraded one revision at a time to nothing, then upgraded to head again
        downgraded = {}
        for revision in revisions[-2::-1]:
            command.downgrade(config, revision)
            downgraded[revision] = schema_of(libpq)
        command.downgrade(config, "base")
        emptied = schema_of(libpq)
        command.upgrade(config, "head")

        # then each downgrade left what the upgrade to that revision made, nothing is left below the
        # first but Alembic's own table, and head is head again
        assert downgraded == {revision: upgraded[revision] for revision in revisions[:-1]}
        assert {row[0] for row in emptied[0]} == {"alembic_version"}
        assert emptied[3:] == [[], []]
        assert schema_of(libpq) == upgraded[revisions[-1]]
