from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from erp_sync.ingress import create_app
from tests.conftest import WEBHOOK_SECRET
from tests.factories import encode, signed_headers
from erp_sync.workers.registry import WORKERS
from erp_sync.workers.runner import run_worker


@pytest.fixture
def ingress(settings):
    """A test client of the ingress app on the run's broker and database."""
    app = create_app(settings)
    yield app.test_client()
    app.extensions["erp_sync.publisher"].close()


def post(client, event: dict) -> None:
    """Post one event, signed, and insist it was accepted."""
    body = encode(event)
    answer = client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET))
    assert answer.status_code == 202, answer.get_json()


@pytest.fixture
def start_workers(settings, broker, committed_session):
    """Start real worker consumers (in threads) on the run's broker and database."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(*names: str, with_settings=None) -> None:
        for name in names:
            stop = threading.Event()
            thread = threading.Thread(target=run_worker, args=(WORKERS[name], with_settings or settings, stop), daemon=True)
            thread.start()
            running.append((stop, thread))

    yield start
    for stop, _ in running:
        stop.set()
    for _, thread in running:
        thread.join(timeout=15)


def wait_for(check: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> object:
    """Poll until `check` returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()
    assert value, f"condition not met within {timeout} s (last value {value!r})"
    return value
