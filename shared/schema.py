"""The database schema this code needs, and whether a database has it, without loading Alembic.

A worker started before `erp-sync migrate` would park every message it took ("relation ... does
not exist"); it checks first. Only a schema behind is refused: during a rolling update the
migration runs first and the previous release's pods go on against the newer schema. So is a
server that refuses the worker itself (no such database, role or password), which no retry mends.
"""
from __future__ import annotations

import logging
import re

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError, SQLAlchemyError

from erp_sync.shared.db import translate_db_error
from erp_sync.shared.errors import ConfigurationError

# The newest migration's revision (shared/migrations/versions/); a unit test holds it to Alembic's
# head. Revisions are four digits, numbered in order, so that one older compares lower.
SCHEMA_REVISION = "0021"
UNDEFINED_TABLE = "42P01"
# What PostgreSQL answers a connection it refuses for good, as libpq hands it on (no SQLSTATE comes
# with it). A server whose lc_messages is not English says it otherwise: the worker then starts.
_REFUSED_FOR_GOOD = re.compile(r'FATAL:  (database "[^"]*" does not exist|role "[^"]*" does not exist'
                               r'|password authentication failed for user "[^"]*"|no pg_hba\.conf entry[^\n]*)')

logger = logging.getLogger(__name__)


def require_current_schema(engine: Engine) -> None:
    """Raise ConfigurationError, telling the operator to migrate, if the schema is behind SCHEMA_REVISION.

    A database out of reach passes: the worker's consumer retries what it cannot store, as it would
    for an outage that began a moment later. A server that refuses this DATABASE_URL for good is a
    ConfigurationError too.
    """
    try:
        with engine.connect() as connection:
            revision = connection.scalar(text("SELECT max(version_num) FROM alembic_version"))
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != UNDEFINED_TABLE:
            raise translate_db_error(exc) from exc
        revision = None
    except SQLAlchemyError as exc:
        refused = _REFUSED_FOR_GOOD.search(str(exc.orig if isinstance(exc, DBAPIError) else exc))
        if refused:
            raise ConfigurationError(f"PostgreSQL refuses DATABASE_URL: {refused.group(1)}") from exc
        logger.warning("cannot check the database schema (%s); starting anyway", translate_db_error(exc))
        return
    if revision is None or revision < SCHEMA_REVISION:
        found = "no erp-sync schema" if revision is None else f"the schema at revision {revision}"
        raise ConfigurationError(f"the database has {found}; this erp-sync needs {SCHEMA_REVISION}: "
                                 "run `erp-sync migrate` first")
