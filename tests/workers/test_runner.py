"""run_worker and the loops beside its consumer: one that fails stops the worker, which then fails too."""
from __future__ import annotations

import sys
import threading
import types

import pytest

from workers import runner
from workers.runner import BackgroundLoop, WorkerFailed, run_worker


def broken_loop(stop: threading.Event) -> None:
    raise RuntimeError("the ERP client could not be built")


def test_a_failed_loop_stops_the_worker_and_keeps_its_error():
    stop = threading.Event()
    loop = BackgroundLoop("the probe", broken_loop, stop)

    loop.start()
    loop.join(timeout=5)

    assert stop.is_set()
    assert isinstance(loop.failure, RuntimeError)


def test_a_loop_that_ends_with_the_stop_is_no_failure():
    stop = threading.Event()
    loop = BackgroundLoop("the probe", lambda stop: stop.wait(), stop)
    loop.start()

    stop.set()
    loop.join(timeout=5)

    assert loop.failure is None


@pytest.fixture
def worker_with_a_broken_loop(monkeypatch):
    """The orders worker's queue, with a handler that does nothing and a loop beside it that fails."""
    module = types.ModuleType("tests_broken_worker")
    module.build_handler = lambda settings: (lambda delivery, session: None)  # type: ignore[attr-defined]

    def start_background(settings, session_factory, publisher, config, stop):
        loop = BackgroundLoop("the broken loop", broken_loop, stop)
        loop.start()
        return [loop]

    module.start_background = start_background  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(runner.WORKER_MODULES, "orders", module.__name__)


def test_the_worker_stops_and_fails_when_a_loop_beside_its_consumer_fails(worker_with_a_broken_loop, settings):
    with pytest.raises(WorkerFailed, match="the broken loop failed: the ERP client could not be built"):
        run_worker("orders", settings, threading.Event())
