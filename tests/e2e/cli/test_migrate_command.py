from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import pika
import psycopg
import pytest
from alembic import command

from erp_sync.shared.migrate import alembic_config, create_database_if_missing
from erp_sync.shared.schema import SCHEMA_REVISION
from erp_sync.shared.topology import WORK_QUEUES
from tests.support import cli, services
from tests.support.pg_front import postgres_front
from tests.support.reconcile import TOKEN
from tests.support.settings import API_TOKEN

PREVIOUS_REVISION = f"{int(SCHEMA_REVISION) - 1:04d}"


@pytest.fixture
def missing_database_url(database_url):
    with services.database_not_yet_created(database_url) as url:
        yield url


@pytest.fixture
def database_one_revision_behind(database_url):
    """A database the previous release migrated: the newest revision not yet run."""
    with services.database_not_yet_created(database_url) as url:
        create_database_if_missing(url)
        command.upgrade(alembic_config(url), PREVIOUS_REVISION)
        yield url


def test_migrate_creates_the_database_schema_and_topology_and_is_safe_twice(missing_database_url, amqp_url):
    # when a newcomer runs `erp-sync migrate` twice against a server without the database
    first = cli.run("migrate", DATABASE_URL=missing_database_url, AMQP_URL=amqp_url)
    second = cli.run("migrate", DATABASE_URL=missing_database_url, AMQP_URL=amqp_url)

    # then the first creates it, the second changes nothing, and both succeed
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert json.loads(first.stdout.splitlines()[-1])["database_created"] is True
    assert json.loads(second.stdout.splitlines()[-1])["database_created"] is False
    with psycopg.connect(services.libpq_url(missing_database_url)) as conn:
        tables = {row[0] for row in conn.execute("select tablename from pg_tables where schemaname='public'")}
    assert {"product_groups", "variants", "stock_levels", "processed_events", "orders"} <= tables
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for queue in WORK_QUEUES.values():
            for name in (queue.name, queue.parking_queue, queue.delay_queue(1_000)):
                channel.queue_declare(name, passive=True)  # raises if it does not exist
    finally:
        connection.close()


def test_migrate_on_a_schema_a_later_release_left_changes_nothing_and_declares_the_topology(
        missing_database_url, amqp_url):
    # given a database a later release migrated (this release is the rollback), and a queue gone meanwhile
    assert cli.run("migrate", DATABASE_URL=missing_database_url, AMQP_URL=amqp_url).returncode == 0
    newer = f"{int(SCHEMA_REVISION) + 1:04d}"
    with psycopg.connect(services.libpq_url(missing_database_url)) as conn:
        conn.execute("UPDATE alembic_version SET version_num = %s", (newer,))
    gone = WORK_QUEUES["inventory"].delay_queue(1_000)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().queue_delete(gone)

        # when the rollback's migrate step runs (the Job, or compose's `migrate` every service waits for)
        result = cli.run("migrate", DATABASE_URL=missing_database_url, AMQP_URL=amqp_url)

        # then it succeeds, saying it left the newer schema alone, and the topology is declared again
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[-1])["schema"] == (
            f"{newer}, newer than this release's: left as it is")
        assert f"newer than this release's {SCHEMA_REVISION}" in result.stderr
        connection.channel().queue_declare(gone, passive=True)  # raises if it does not exist
    finally:
        connection.close()
    with psycopg.connect(services.libpq_url(missing_database_url)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(newer,)]


def test_migrate_needs_no_maintenance_database_when_its_own_exists(migrated_database_url, amqp_url):
    # given the database reached through a front that serves it alone, as PgBouncer or pg_hba.conf may
    with postgres_front(migrated_database_url) as fronted:
        # when `erp-sync migrate` runs there
        result = cli.run("migrate", DATABASE_URL=fronted, AMQP_URL=amqp_url)

    # then it succeeds without asking the `postgres` database anything
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["database_created"] is False


def test_migrate_with_an_unreachable_broker_fails_with_one_line(migrated_database_url):
    result = cli.run("migrate", DATABASE_URL=migrated_database_url, AMQP_URL="amqp://guest:guest@127.0.0.1:9/%2F")

    assert result.returncode == 1
    *narrated, last = result.stderr.strip().splitlines()
    assert last.startswith("erp-sync: cannot connect to RabbitMQ") and "Connection refused" in last
    # the migrations' own lines, and no traceback nor pika's account of each connection attempt
    assert all(" alembic." in line for line in narrated), result.stderr


def test_bad_setting_stops_the_command_with_one_line_naming_it():
    result = cli.run("migrate", ERP_ORDER_MODE="sometimes")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "erp-sync: configuration error: ERP_ORDER_MODE: Input should be 'orders' or 'adjust'"
    ]


@pytest.mark.parametrize("database", ["erp_sync_not_created", "postgres"])
def test_a_role_the_server_does_not_know_stops_migrate_as_a_wrong_setting(database_url, amqp_url, database):
    # given a DATABASE_URL naming a role PostgreSQL does not have (its database to create, or one that exists)
    server = urlsplit(services.with_path(database_url, database))
    url = urlunsplit(server._replace(netloc=f"erp_sync_no_such_role@{server.netloc.rsplit('@', 1)[-1]}"))

    # when `erp-sync migrate` runs with it
    result = cli.run("migrate", DATABASE_URL=url, AMQP_URL=amqp_url)

    # then it stops as the workers do for the same URL: a wrong setting, exit 2, in one line
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'erp-sync: configuration error: PostgreSQL refuses DATABASE_URL: role "erp_sync_no_such_role" does not exist')


def test_a_worker_started_before_migrate_stops_at_once_saying_so(database_url, amqp_url):
    # given a database created but never migrated
    with services.private_database(database_url) as empty:
        # when an inventory worker starts against it
        result = cli.run("worker", "inventory", DATABASE_URL=empty, AMQP_URL=amqp_url, timeout=60)

    # then it stops before taking any message, and says what to run
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync: configuration error: the database has no erp-sync schema; this erp-sync needs "
        f"{SCHEMA_REVISION}: run `erp-sync migrate` first")
    assert "consuming" not in result.stderr


def test_the_reconcile_worker_started_before_migrate_stops_at_once_saying_so(database_url, amqp_url):
    # given a database created but never migrated (the worker would have failed its first sweep, at
    # 3 AM, on a missing table)
    with services.private_database(database_url) as empty:
        # when the reconcile worker starts against it
        result = cli.run("worker", "reconcile", DATABASE_URL=empty, AMQP_URL=amqp_url,
                         ERP_BASE_URL="http://127.0.0.1:9", ERP_API_TOKEN="token", timeout=60)

    # then it stops at once, and says what to run
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync: configuration error: the database has no erp-sync schema; this erp-sync needs "
        f"{SCHEMA_REVISION}: run `erp-sync migrate` first")
    assert "next sweep at" not in result.stderr


def test_the_api_started_before_migrate_stops_at_once_saying_so(database_url, amqp_url):
    # given a database created but never migrated (an upgrade's rehearsal: reads of a column the
    # migration adds were answered 503 "the commerce database is unavailable")
    with services.private_database(database_url) as empty:
        # when the storefront's API starts against it
        result = cli.run("api", "--port", str(cli.free_port()), DATABASE_URL=empty, AMQP_URL=amqp_url,
                         STOREFRONT_API_TOKEN=API_TOKEN, timeout=60)

    # then it stops before serving, and says what to run
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync: configuration error: the database has no erp-sync schema; this erp-sync needs "
        f"{SCHEMA_REVISION}: run `erp-sync migrate` first")


@pytest.mark.parametrize("arguments", [
    ["reconcile", "--now"], ["reconcile", "--dry-run"], ["reconcile", "--history"], ["orders", "list"],
    ["orders", "retry", "--all"],
])
def test_a_one_shot_command_against_a_schema_behind_stops_at_once_saying_so(
        database_one_revision_behind, amqp_url, erp, arguments):
    # given a database left at the previous release's revision (an upgrade whose migrate did not run yet)
    url = erp({"BEHIND-1": 4})

    # when the person on call runs a command that reads it
    result = cli.run(*arguments, DATABASE_URL=database_one_revision_behind, AMQP_URL=amqp_url,
                     ERP_BASE_URL=url, ERP_API_TOKEN=TOKEN, timeout=60)

    # then it stops before doing anything, says what to run, and no sweep was recorded as failed
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"erp-sync: configuration error: the database has the schema at revision {PREVIOUS_REVISION}; "
        f"this erp-sync needs {SCHEMA_REVISION}: run `erp-sync migrate` first")
    with psycopg.connect(services.libpq_url(database_one_revision_behind)) as conn:
        assert conn.execute("SELECT count(*) FROM reconciliation_runs").fetchone() == (0,)
