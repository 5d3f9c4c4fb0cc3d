"""Run one consuming worker process: declare the topology, then consume its queue until SIGTERM."""
from __future__ import annotations

import gc
import logging
import os
import threading
from typing import TYPE_CHECKING

from prometheus_client.registry import Collector
from sqlalchemy import Engine

from erp_sync.shared.broker import declare_all
from erp_sync.shared.consumer import ConcurrentConsumer, Consumer, ConsumerConfig, Runner
from erp_sync.shared.db import DEFAULT_POOL_SIZE, make_engine, make_session_factory
from erp_sync.shared.errors import ErpSyncError
from erp_sync.shared.heap import freeze_what_is_loaded
from erp_sync.shared.message_metrics import consumers_connected
from erp_sync.shared.order_metrics import order_collector
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.queue_metrics import queue_collector
from erp_sync.shared.reconcile_metrics import reconcile_collector
from erp_sync.shared.schema import require_current_schema
from erp_sync.shared.settings import Settings
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.crash_guard import CrashGuard
from erp_sync.workers.metrics_server import serving_metrics
from erp_sync.workers.outage_hold import OutageHold
from erp_sync.workers.signals import stop_on_signals

if TYPE_CHECKING:
    from erp_sync.workers.registry import ConsumingWorker

logger = logging.getLogger(__name__)


class WorkerFailed(ErpSyncError):
    """A loop beside the consumer failed; the worker stopped with it and exits non-zero."""


def consumer_config(settings: Settings, worker: ConsumingWorker) -> ConsumerConfig:
    """The consumer's settings, where the worker may fix its own batch size and window."""
    batch_window_ms = settings.worker_batch_window_ms if worker.batch_window_ms is None else worker.batch_window_ms
    return ConsumerConfig(
        amqp_url=settings.amqp_url,
        retry_delays_ms=settings.retry_delays_ms,
        max_attempts=settings.max_delivery_attempts,
        prefetch=worker.prefetch_of(settings),
        batch_size=worker.batch_size or settings.worker_batch_size,
        batch_window_s=batch_window_ms / 1000,
    )


def run_worker(worker: ConsumingWorker, settings: Settings, stop: threading.Event | None = None) -> None:
    """Consume the worker's queue until `stop` is set (SIGTERM and SIGINT set it)."""
    stop = stop or stop_on_signals("finishing the current batch", settings.worker_stop_timeout_s)
    if worker.nice:
        os.nice(worker.nice(settings))
    declare_all(settings.amqp_url, settings.retry_delays_ms, settings.order_retry_interval_s * 1000,
                settings.queue_bound)
    connections = worker.database_connections(settings) if worker.database_connections else DEFAULT_POOL_SIZE
    engine = make_engine(settings.database_url, connections, settings.database_lock_timeout_ms)
    require_current_schema(settings.database_url)
    # Listening first: a port taken stops the worker before it starts anything.
    with serving_metrics(settings, worker.name, _collectors(worker, settings, engine), alive=consumers_connected):
        loops = _consume(worker, settings, engine, stop)
    failed = next((loop for loop in loops if loop.failure is not None), None)
    if failed is not None:
        raise WorkerFailed(f"worker {worker.name} stopped: {failed.name} failed: {failed.failure}") from failed.failure


def _collectors(worker: ConsumingWorker, settings: Settings, engine: Engine) -> list[Collector]:
    """What the worker's /metrics reads at each scrape: its queues, and perhaps the database's figures."""
    collectors: list[Collector] = [queue_collector(settings, worker.queues)]
    if worker.exports_database_figures:
        collectors += [order_collector(engine), reconcile_collector(engine)]
    return collectors


# A batch's decoded events and rows are garbage collector work while they live: with the default
# thresholds (700, 10, 10) a batch of 100 catalog groups of 1,000 variants ran 15 full collections
# over its own growing heap, half the worker's CPU. Reference counting frees almost all of it; the
# collector is for cycles, which can wait for 50,000 new objects (its generation 0).
GC_THRESHOLDS = (50_000, 20, 10)


def collect_garbage_less_often() -> None:
    """Fewer collector runs for a worker process, as `erp-sync worker` sets them once started."""
    freeze_what_is_loaded()
    gc.set_threshold(*GC_THRESHOLDS)


def consumer_for(worker: ConsumingWorker, settings: Settings, runner: Runner, config: ConsumerConfig,
                 publisher: ConfirmingPublisher) -> Consumer:
    """The worker's consumer: one batch at a time, or its `concurrent_batches` at once.

    A worker whose batches are bounded by their bodies' bytes keeps the bound at one batch too.
    """
    if not worker.runs_batches_concurrently(settings):
        return Consumer(worker.queue, runner, config, publisher)
    return ConcurrentConsumer(worker.queue, runner, config, publisher, concurrency=worker.concurrent_batches(settings),
                              batch_size=config.batch_size, batch_bytes=worker.batch_bytes)


def _consume(worker: ConsumingWorker, settings: Settings, engine: Engine, stop: threading.Event) -> list[BackgroundLoop]:
    session_factory = make_session_factory(engine)
    config = consumer_config(settings, worker)
    runner = CrashGuard.on(OutageHold.on(worker.build_runner(settings, session_factory, config, stop), engine, stop),
                           worker.queue.name, engine, stop)
    publisher = ConfirmingPublisher(settings.amqp_url, confirm_timeout_s=settings.publish_confirm_timeout_s)
    loops: list[BackgroundLoop] = (
        worker.start_loops(settings, session_factory, publisher, config, stop) if worker.start_loops else []
    )
    collect_garbage_less_often()
    logger.info("worker %s starting", worker.name)
    try:
        consumer_for(worker, settings, runner, config, publisher).run(stop)
    finally:
        stop.set()
        # A push under way ends within the ERP client's timeouts, a wait on a row lock within
        # DATABASE_LOCK_TIMEOUT_MS; WORKER_STOP_TIMEOUT_S (signals.py) bounds the rest. Work cut
        # short is rolled back and redelivered: a push again meets the ERP's 409 for a repeat.
        for loop in loops:
            loop.join()
        publisher.close()
        engine.dispose()
        logger.info("worker %s stopped", worker.name)
    return loops
