"""A RabbitMQ vhost and a PostgreSQL database of one benchmark run's own, removed when it ends."""
from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from erp_sync.shared.broker import declare_all
from erp_sync.shared.db import psycopg_url
from erp_sync.shared.migrate import (
    MAINTENANCE_DATABASE,
    create_database_if_missing,
    upgrade_schema,
)
from erp_sync.shared.topology import DEFAULT_QUEUE_BOUND, QueueBound


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=check, timeout=60)


@contextmanager
def private_vhost(amqp_url: str, retry_delays_ms: tuple[int, ...],
                  bound: QueueBound = DEFAULT_QUEUE_BOUND) -> Iterator[str]:
    """A new vhost with the whole topology declared, its work queues bounded by `bound`; its AMQP URL."""
    name = f"erp-sync-bench-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(amqp_url)
    try:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        url = urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, ""))
        declare_all(url, retry_delays_ms, bound=bound)
        yield url
    finally:
        _rabbitmqctl("delete_vhost", name, check=False)


@contextmanager
def private_database(database_url: str) -> Iterator[str]:
    """A new database migrated to head, on the server of `database_url`; its URL."""
    url = psycopg_url(database_url).set(database=f"erp_sync_bench_{uuid.uuid4().hex[:10]}")
    rendered = url.render_as_string(hide_password=False)
    try:
        create_database_if_missing(rendered)
        upgrade_schema(rendered)
        yield rendered
    finally:
        # FORCE: the ingress's pooled connections may outlive it by a moment.
        engine = create_engine(url.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT",
                               poolclass=NullPool)
        try:
            with engine.connect() as connection:
                quoted = connection.dialect.identifier_preparer.quote_identifier(url.database or "")
                connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
        finally:
            engine.dispose()
