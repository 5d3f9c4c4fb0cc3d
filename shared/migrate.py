"""Create the database and bring its schema to the newest Alembic revision, without alembic.ini."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
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
    """Create the URL's database through the server's maintenance database; True if created."""
    url = psycopg_url(database_url)
    name = url.database
    if not name or name == MAINTENANCE_DATABASE:
        return False
    # CREATE DATABASE cannot run inside a transaction block.
    engine = create_engine(
        url.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with engine.connect() as connection:
            exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name})
            if exists:
                return False
            quoted = connection.dialect.identifier_preparer.quote_identifier(name)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    except SQLAlchemyError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) in ALREADY_EXISTS_SQLSTATES:
            return False
        raise translate_db_error(exc) from exc
    finally:
        engine.dispose()


def upgrade_schema(database_url: str) -> None:
    """Apply every migration not yet applied; a no-op on an up-to-date schema."""
    try:
        command.upgrade(alembic_config(database_url), "head")
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc
