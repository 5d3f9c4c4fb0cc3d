"""The consumer's BatchRunner over a worker's real handlers, for the workers' integration tests."""
from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.batch_runner import BatchRunner
from erp_sync.shared.consumer import ConsumerConfig
from erp_sync.shared.settings import load_settings


def batch_runner(request: pytest.FixtureRequest, db_engine: Engine, migrated_database_url: str,
                 worker: ModuleType) -> Iterator[tuple[BatchRunner, sessionmaker[Session]]]:
    """The consumer's BatchRunner with `worker`'s real handlers (its batch handler when the param says so),
    its transactions rolled back at the end."""
    connection = db_engine.connect()
    outer = connection.begin()
    sessions = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    settings = load_settings(database_url=migrated_database_url)
    batch_handler = worker.build_batch_handler(settings) if request.param == "with batch handler" else None
    config = ConsumerConfig(amqp_url="amqp://unused", retry_delays_ms=(200, 400), max_attempts=5)
    yield BatchRunner(worker.build_handler(settings), sessions, config, batch_handler), sessions
    outer.rollback()
    connection.close()
