"""The loops beside a worker's consumer: one that fails stops the worker and keeps its error."""
from __future__ import annotations

import threading

from erp_sync.workers.background import BackgroundLoop


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
