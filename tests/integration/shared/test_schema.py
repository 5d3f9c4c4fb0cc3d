"""A worker checks the database's schema before it takes any message: behind the code, it stops."""
from __future__ import annotations

import re

import psycopg
import pytest
from alembic.script import ScriptDirectory

from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.migrate import alembic_config, create_database_if_missing
from erp_sync.shared.schema import SCHEMA_REVISION, require_current_schema
from tests.support.services import database_not_yet_created, libpq_url


def test_the_code_needs_alembics_newest_revision_and_revisions_sort_in_order(database_url):
    script = ScriptDirectory.from_config(alembic_config(database_url))
    revisions = [revision.revision for revision in script.walk_revisions()]  # newest first

    assert script.get_heads() == [SCHEMA_REVISION]
    assert all(re.fullmatch(r"[0-9]{4}", revision) for revision in revisions)
    assert revisions == sorted(revisions, reverse=True)


@pytest.mark.parametrize("revision, refused", [
    (None, "the database has no erp-sync schema"),
    ("0003", "the database has the schema at revision 0003"),
    (SCHEMA_REVISION, None),
    ("9999", None),  # a rolling update: migrated for the next release while this one still runs
])
def test_a_schema_behind_the_code_is_refused_with_what_to_do(database_url, revision, refused):
    with database_not_yet_created(database_url) as target:
        create_database_if_missing(target)
        if revision is not None:
            with psycopg.connect(libpq_url(target)) as conn:
                conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
                conn.execute("INSERT INTO alembic_version VALUES (%s)", (revision,))
        if refused is None:
            require_current_schema(target)
            return
        with pytest.raises(ConfigurationError) as caught:
            require_current_schema(target)
        assert str(caught.value) == f"{refused}; this erp-sync needs {SCHEMA_REVISION}: run `erp-sync migrate` first"


def test_a_database_out_of_reach_does_not_stop_the_worker(caplog):
    require_current_schema("postgresql+psycopg://postgres@127.0.0.1:9/erp_sync")
    assert "cannot check the database schema" in caplog.text


@pytest.mark.parametrize("url, refused", [
    ("postgresql+psycopg://root@127.0.0.1:5432/erp_sync_no_such_database",
     'database "erp_sync_no_such_database" does not exist'),
    ("postgresql+psycopg://erp_sync_no_such_role@127.0.0.1:5432/postgres", 'role "erp_sync_no_such_role" does not exist'),
])
def test_a_database_url_the_server_refuses_stops_the_worker(url, refused):
    # Started anyway, it parked every message it took after its retries, as if the database were down
    with pytest.raises(ConfigurationError) as caught:
        require_current_schema(url)
    assert str(caught.value) == f"PostgreSQL refuses DATABASE_URL: {refused}"


@pytest.mark.parametrize("password", ["s3cret%zz", "p@ss%zz"])
def test_a_database_url_libpq_cannot_read_stops_the_worker_without_showing_the_password(password):
    # a % (or an @) in a password not written %25 (%40): SQLAlchemy took it as it was, libpq refuses it
    with pytest.raises(ConfigurationError) as caught:
        require_current_schema(f"postgresql+psycopg://root:{password}@127.0.0.1:5432/postgres")

    assert str(caught.value) == ('DATABASE_URL: invalid percent-encoded token: "…" '
                                 '(a % or an @ in the password is written %25 or %40)')
