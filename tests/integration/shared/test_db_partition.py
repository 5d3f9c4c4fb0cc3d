"""A database that stops answering without a word is told within seconds, not TCP's quarter of an hour."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from erp_sync.shared.db import make_engine, translate_db_error
from tests.support.partition import partitionable

# The connection's own bound (shared/pg.py: 10 s unacknowledged) plus TCP's retransmission steps.
TOLD_WITHIN_S = 40


def test_a_query_to_a_database_cut_off_without_a_word_fails_as_unavailable(migrated_database_url):
    with partitionable(migrated_database_url) as path:
        # given an engine whose connection reached the database through a path that then goes silent
        engine = make_engine(path.database_url)
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar_one() == 1
                path.cut()

                # when a query is sent meanwhile
                failures: list[BaseException] = []
                query = threading.Thread(target=lambda: _run(connection, failures))
                query.start()
                query.join(TOLD_WITHIN_S)
                told = not query.is_alive()
                path.heal()  # a query still waiting gets through now, and the thread ends
                query.join(30)
        finally:
            engine.dispose()

    # then it failed within seconds, as the database being unavailable
    assert told, f"the query still waited {TOLD_WITHIN_S} s after the path went silent"
    [failure] = failures
    assert isinstance(failure, OperationalError)
    assert "database unavailable" in str(translate_db_error(failure))


def _run(connection, failures: list[BaseException]) -> None:
    try:
        connection.execute(text("SELECT 2"))
    except Exception as exc:  # noqa: BLE001 (kept for the test's assertions)
        failures.append(exc)


pytestmark = pytest.mark.slow
