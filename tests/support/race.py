"""Writers on their own connections at once: the same items in opposite orders, or one waiting for another's lock."""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

T = TypeVar("T")


def race_both_ways(db_engine: Engine, apply: Callable[[T, Session], object], items: Sequence[T]) -> list[BaseException]:
    """Apply `items` oldest first and newest first, one committed transaction each; return the errors."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(order: Sequence[T]) -> None:
        try:
            start.wait()
            for item in order:
                with Session(db_engine) as session, session.begin():
                    apply(item, session)
        except BaseException as exc:  # noqa: BLE001 (reported by the test thread)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(order,)) for order in (items, items[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def blocked_or_done(db_engine: Engine, thread: threading.Thread) -> bool:
    """Whether the thread has finished, or a transaction of this database waits for a lock another holds."""
    with db_engine.connect() as connection:
        waiting = connection.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                         "AND wait_event_type = 'Lock'"))
    return not thread.is_alive() or bool(waiting)
