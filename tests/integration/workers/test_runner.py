"""run_worker with a loop beside its consumer that fails: the worker stops, and then fails too."""
from __future__ import annotations

import threading

import pytest

from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.registry import ConsumingWorker, batches_of
from erp_sync.workers.runner import WorkerFailed, run_worker


def broken_loop(stop: threading.Event) -> None:
    raise RuntimeError("the ERP client could not be built")


@pytest.fixture
def worker_with_a_broken_loop():
    """The orders worker's queue, with a handler that does nothing and a loop beside it that fails."""

    def start_loops(settings, session_factory, publisher, config, stop):
        loop = BackgroundLoop("the broken loop", broken_loop, stop)
        loop.start()
        return [loop]

    def do_nothing(settings, sessions, config, stop):
        return batches_of(lambda delivery, session: None, sessions, config)

    return ConsumingWorker("orders", WORK_QUEUES["orders"], do_nothing, start_loops=start_loops)


def test_the_worker_stops_and_fails_when_a_loop_beside_its_consumer_fails(worker_with_a_broken_loop, settings):
    with pytest.raises(WorkerFailed, match="the broken loop failed: the ERP client could not be built"):
        run_worker(worker_with_a_broken_loop, settings, threading.Event())
