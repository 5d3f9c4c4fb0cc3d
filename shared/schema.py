"""The database schema this code needs, and whether a database has it, without loading Alembic or SQLAlchemy.

A worker started before `erp-sync migrate` would park every message it took ("relation ... does
not exist"); it checks first. Only a schema behind is refused: during a rolling update the
migration runs first and the previous release's pods go on against the newer schema. So is a
server that refuses the worker itself (no such database, role or password), which no retry mends.
"""
from __future__ import annotations

import logging

import psycopg

from erp_sync.shared.errors import ConfigurationError, DatabaseUnavailable, PermanentError
from erp_sync.shared.pg import CONNECT_ARGS, conninfo, refused_for_good, translate_pg_error, unreadable_url

# The newest migration's revision (shared/migrations/versions/); a unit test holds it to Alembic's
# head. Revisions are four digits, numbered in order, so that one older compares lower.
SCHEMA_REVISION = "0025"
logger = logging.getLogger(__name__)


def require_current_schema(database_url: str) -> None:
    """Raise ConfigurationError, telling the operator to migrate, if the schema is behind SCHEMA_REVISION.

    A database out of reach passes: the worker's consumer retries what it cannot store, as it would
    for an outage that began a moment later. A server that refuses this DATABASE_URL for good is a
    ConfigurationError too.
    """
    out_of_reach = check_current_schema(database_url)
    if out_of_reach is not None:
        logger.warning("cannot check the database schema (%s); starting anyway", out_of_reach)


def check_current_schema(database_url: str) -> DatabaseUnavailable | PermanentError | None:
    """`require_current_schema` without its warning: what kept the database out of reach, if it was."""
    try:
        with psycopg.connect(conninfo(database_url), **CONNECT_ARGS) as connection:
            row = connection.execute("SELECT max(version_num) FROM alembic_version").fetchone()
            revision = row[0] if row else None
    except psycopg.errors.UndefinedTable:
        revision = None
    except psycopg.ProgrammingError as exc:
        raise unreadable_url(exc, database_url) or translate_pg_error(exc) from exc
    except psycopg.Error as exc:
        if (refused := refused_for_good(exc)) is not None:
            raise refused from exc
        return translate_pg_error(exc)
    if revision is None or revision < SCHEMA_REVISION:
        found = "no erp-sync schema" if revision is None else f"the schema at revision {revision}"
        raise ConfigurationError(f"the database has {found}; this erp-sync needs {SCHEMA_REVISION}: "
                                 "run `erp-sync migrate` first")
    return None
