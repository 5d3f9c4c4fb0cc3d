"""Create the database and bring its schema to the newest Alembic revision, without alembic.ini."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import backoff
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from erp_sync.shared.db import psycopg_url, translate_db_error
from erp_sync.shared.errors import TransientError
from erp_sync.shared.migrations.locks import LOCK_TIMEOUT, LOCK_TIMEOUT_ATTRIBUTE
from erp_sync.shared.pg import LOCK_NOT_AVAILABLE, error_summary, refused_for_good
from erp_sync.shared.schema import SCHEMA_REVISION

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MAINTENANCE_DATABASE = "postgres"
# Another process creating the same database at the same moment.
ALREADY_EXISTS_SQLSTATES = frozenset({"42P04", "23505"})
# A revision held off by transactions under way is tried again, after pauses of at most 1, 2, 4, 8
# and 16 s (jittered): with each try's lock wait, under a minute before the operator hears of it.
HELD_OFF_TRIES = 6
HELD_OFF_MAX_PAUSE_S = 16
DEADLOCK = "40P01"  # the shop's writes and a revision's locks, taken in another order

logger = logging.getLogger(__name__)


class MigrationHeldOff(TransientError):
    """A revision waited its lock timeout for a table that transactions under way hold, or met them in a
    deadlock; it rolled back, and the revisions before it stay applied."""


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration for the packaged migrations and this database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # The value goes through ConfigParser interpolation: a %-escaped password must survive it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def create_database_if_missing(database_url: str) -> bool:
    """Create the URL's database unless it takes a connection; True if created.

    The database itself is asked first: behind PgBouncer, or a pg_hba.conf that lets the app into
    its own database alone, the server's maintenance database is out of reach, and only creating
    the database needs it. libpq gives no SQLSTATE for a refused connection, so the maintenance
    database says whether the refusal meant a missing database; out of reach too, the refusal stands.
    """
    url = psycopg_url(database_url)
    name = url.database
    if not name or name == MAINTENANCE_DATABASE:
        return False
    refusal = _refusal(url)
    if refusal is None:
        return False
    # CREATE DATABASE cannot run inside a transaction block.
    engine = create_engine(
        url.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError:
            raise refused_for_good(refusal) or translate_db_error(refusal) from refusal
        with connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists:
                # Refused for another reason, or created meanwhile by another migrate: asking again tells.
                if (refusal := _refusal(url)) is None:
                    return False
                raise refused_for_good(refusal) or translate_db_error(refusal) from refusal
            quoted = connection.dialect.identifier_preparer.quote_identifier(name)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    except SQLAlchemyError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) in ALREADY_EXISTS_SQLSTATES:
            return False
        raise translate_db_error(exc) from exc
    finally:
        engine.dispose()


def _refusal(url: URL) -> SQLAlchemyError | None:
    """Why the database refused a connection; None when it took one."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect():
            return None
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()


def upgrade_schema(database_url: str, *, tries: int = HELD_OFF_TRIES, lock_timeout: str = LOCK_TIMEOUT) -> str | None:
    """Apply every migration not yet applied; a no-op on an up-to-date schema. Returns the database's
    revision when it is newer than this release's (left as it is), else None.

    A newer schema is a rollback to this release: the release runs on it (migrations add before they
    remove), and Alembic, which knows no such revision, would fail the rollback's migrate step.
    A revision that waits `lock_timeout` for a table's lock (shared/migrations/locks.py) is tried
    again, up to `tries` times in all, then MigrationHeldOff.
    """
    ahead = _revision_ahead(database_url)
    if ahead is not None:
        logger.warning("the database's schema is at revision %s, newer than this release's %s (a rollback?): "
                       "left as it is", ahead, SCHEMA_REVISION)
        return ahead
    config = alembic_config(database_url)
    config.attributes[LOCK_TIMEOUT_ATTRIBUTE] = lock_timeout
    upgrade = backoff.on_exception(backoff.expo, MigrationHeldOff, max_tries=tries, max_value=HELD_OFF_MAX_PAUSE_S,
                                   jitter=backoff.full_jitter, logger=None,
                                   on_backoff=lambda details: _log_held_off(details, tries))(_upgrade)
    try:
        upgrade(config, lock_timeout)
    except MigrationHeldOff as exc:
        raise MigrationHeldOff(f"{exc}; held off {tries} times: end those transactions (docs/runbook.md) and run "
                               "`erp-sync migrate` again") from exc
    return None


def _revision_ahead(database_url: str) -> str | None:
    """The database's newest revision if it is newer than SCHEMA_REVISION (revisions are four digits, in order)."""
    engine = create_engine(psycopg_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    except DBAPIError as exc:
        raise refused_for_good(exc) or translate_db_error(exc) from exc
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc
    finally:
        engine.dispose()
    newest = max(heads, default=None)
    return newest if newest is not None and newest > SCHEMA_REVISION else None


def _upgrade(config: Config, lock_timeout: str) -> None:
    try:
        command.upgrade(config, "head")
    except DBAPIError as exc:
        raise _held_off(exc, lock_timeout) or refused_for_good(exc) or translate_db_error(exc) from exc
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc


def _held_off(exc: DBAPIError, lock_timeout: str) -> MigrationHeldOff | None:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate not in (LOCK_NOT_AVAILABLE, DEADLOCK):
        return None
    held = (f"waited {lock_timeout} for a table's lock that transactions under way hold"
            if sqlstate == LOCK_NOT_AVAILABLE else "met transactions under way in a deadlock")
    statement = " ".join(str(exc.statement or "").split())[:120]
    return MigrationHeldOff(f"a revision {held} and rolled back, those before it staying applied "
                            f"({error_summary(exc.orig or exc)}: {statement})")


def _log_held_off(details: Any, tries: int) -> None:
    logger.warning("%s; trying again in %.1f s (try %d of %d)", details["exception"], details["wait"],
                   details["tries"] + 1, tries)
