"""Watching the database until a pre-filled queue's events are all recorded as processed."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, TextClause, create_engine, text
from sqlalchemy.pool import NullPool

POLL_INTERVAL_S = 0.02
_COUNT = text("SELECT count(*) FROM processed_events WHERE event_type = :event_type")
_TABLES = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")


@dataclass(frozen=True)
class Drain:
    """How long the workers took, counted from their start; `processed` < `expected` if they gave up."""

    expected: int
    processed: int
    elapsed_s: float
    first_row_s: float | None

    @property
    def complete(self) -> bool:
        return self.processed >= self.expected

    @property
    def rate(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s else 0.0


def bench_engine(database_url: str) -> Engine:
    return create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


def wait_processed(engine: Engine, event_type: str, expected: int, started: float, timeout_s: float,
                   alive: Callable[[], None]) -> Drain:
    """Poll until `expected` events of `event_type` are recorded; `alive` raises if a worker died."""
    return wait_count(engine, _COUNT, {"event_type": event_type}, expected, started, timeout_s, alive)


def wait_count(engine: Engine, count: TextClause, params: dict[str, Any], expected: int, started: float,
               timeout_s: float, alive: Callable[[], None], poll_interval_s: float = POLL_INTERVAL_S) -> Drain:
    """Poll the `count` query until it reaches `expected`; `alive` raises if a worker died."""
    first_row_s: float | None = None
    done = 0
    with engine.connect() as connection:
        while (now := time.monotonic()) - started < timeout_s:
            done = int(connection.execute(count, params).scalar_one())
            if done and first_row_s is None:
                first_row_s = now - started
            if done >= expected:
                return Drain(expected, done, now - started, first_row_s)
            alive()
            time.sleep(poll_interval_s)
    return Drain(expected, done, time.monotonic() - started, first_row_s)


def empty_tables(engine: Engine) -> None:
    """Every table but Alembic's emptied, so each phase starts from the same state."""
    with engine.connect() as connection:
        names = [connection.dialect.identifier_preparer.quote_identifier(name)
                 for name in connection.execute(_TABLES).scalars()]
        if names:
            connection.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
