"""The storefront API while every request thread waits out a lock: the liveness probe answers, and
requests beyond what can wait are told to come back rather than queued behind them."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import requests

from tests.support import cli, services
from tests.support.settings import API_TOKEN

THREADS = 2
LOCK_TIMEOUT_MS = 3_000
READS = 12


@pytest.fixture(scope="module")
def api(migrated_database_url, topology):
    with cli.serving("api", DATABASE_URL=migrated_database_url, AMQP_URL=topology, STOREFRONT_API_TOKEN=API_TOKEN,
                     API_WORKERS="1", API_THREADS=str(THREADS), DATABASE_LOCK_TIMEOUT_MS=str(LOCK_TIMEOUT_MS)) as port:
        yield port


def timed_get(port: int, path: str, token: str | None = API_TOKEN) -> tuple[int, float, str]:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.get(f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30)
    return answer.status_code, time.monotonic() - started, answer.text


def test_with_stock_levels_locked_the_probe_answers_and_the_reads_beyond_the_threads_are_told_at_once(
        api, migrated_database_url):
    # given stock_levels locked (a migration, a VACUUM FULL) and a burst of stock reads, each of
    # which waits out the lock on a request thread
    with psycopg.connect(services.libpq_url(migrated_database_url)) as lock, ThreadPoolExecutor(READS) as pool:
        lock.execute("LOCK TABLE stock_levels IN ACCESS EXCLUSIVE MODE")
        reads = [pool.submit(timed_get, api, f"/api/v1/inventory/HELD-{n}") for n in range(READS)]
        time.sleep(0.5)

        # when the liveness probe asks meanwhile
        probe = timed_get(api, "/healthz", token=None)
        answers = [read.result() for read in reads]
        lock.rollback()

    # then it is answered at once, alive
    assert probe[0] == 200 and probe[1] < 1.0, probe
    # and the reads beyond the threads and as many waiting are told at once to come back, the others
    # answered 503 once the lock wait ran out: none waits behind the others' waits
    busy = [seconds for status, seconds, text in answers if status == 503 and "the server is busy" in text]
    assert len(busy) >= READS - 2 * THREADS and max(busy) < 1.0, answers
    assert all(status == 503 for status, _, _ in answers), answers
    assert max(seconds for _, seconds, _ in answers) < 3 * LOCK_TIMEOUT_MS / 1000, answers
