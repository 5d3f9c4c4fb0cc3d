"""Create the database and bring its schema to the newest Alembic revision, without alembic.ini."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from erp_sync.shared.db import psycopg_url, translate_db_error

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MAINTENANCE_DATABASE = "postgres"
# Another process creating the same database at the same moment.
ALREADY_EXISTS_SQLSTATES = frozenset({"42P04", "23505"})


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
            raise translate_db_error(refusal) from refusal
        with connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists:
                # Refused for another reason, or created meanwhile by another migrate: asking again tells.
                if (refusal := _refusal(url)) is None:
                    return False
                raise translate_db_error(refusal) from refusal
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


def upgrade_schema(database_url: str) -> None:
    """Apply every migration not yet applied; a no-op on an up-to-date schema."""
    try:
        command.upgrade(alembic_config(database_url), "head")
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc
