"""Fixtures of the integration tier: the run's own PostgreSQL database and RabbitMQ vhost, and settings on them."""
from __future__ import annotations

from tests.support.db_fixtures import committed_session, db_engine, db_session, migrated_database_url  # noqa: F401
from tests.support.service_fixtures import *  # noqa: F403 (the service fixtures)
