"""Run one worker process: declare the topology, then consume its queue until SIGTERM."""
from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType

from sqlalchemy.orm import Session, sessionmaker

from shared.broker import declare_all
from shared.consumer import BatchHandler, BatchRunner, Consumer, ConsumerConfig, Handler, Runner
from shared.db import DEFAULT_POOL_SIZE, make_engine, make_session_factory
from shared.errors import ErpSyncError
from shared.publisher import ConfirmingPublisher
from shared.settings import Settings
from shared.signals import stop_on_signals
from shared.topology import WORK_QUEUES

logger = logging.getLogger(__name__)

# Each module offers `build_handler(settings) -> Handler`, or `build_runner(settings,
# session_factory, config) -> Runner` to run its batches its own way. It may also offer
# `build_batch_handler(settings) -> BatchHandler` for a faster path through whole batches;
# `BATCH_SIZE` and `BATCH_WINDOW_MS` (in place of WORKER_BATCH_SIZE and WORKER_BATCH_WINDOW_MS);
# `database_connections(settings) -> int` when it uses more than a few at once; and
# `start_background(settings, session_factory, publisher, config, stop) -> list[BackgroundLoop]` for
# loops that run beside the consumer in the same process (the orders worker's pushes and ERP probe).
WORKER_MODULES: dict[str, str] = {
    "catalog": "workers.catalog",
    "inventory": "workers.inventory",
    "media": "workers.media",
    "orders": "workers.orders",
}


class WorkerFailed(ErpSyncError):
    """A loop beside the consumer failed; the worker stopped with it and exits non-zero."""


class BackgroundLoop(threading.Thread):
    """Runs `loop(stop)` beside the consumer; when it fails, the whole worker stops and fails with it."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._loop = loop
        self._worker_stop = stop
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop(self._worker_stop)
        except BaseException as exc:  # noqa: BLE001 (kept, and raised again by run_worker)
            logger.exception("%s failed; stopping the worker", self.name)
            self.failure = exc
        finally:
            self._worker_stop.set()  # a worker missing one of its loops must not go on as if it had it


def consumer_config(settings: Settings, module: ModuleType) -> ConsumerConfig:
    """The consumer's settings, where the worker's module may fix its own BATCH_SIZE and BATCH_WINDOW_MS."""
    return ConsumerConfig(
        amqp_url=settings.amqp_url,
        retry_delays_ms=settings.retry_delays_ms,
        max_attempts=settings.max_delivery_attempts,
        prefetch=settings.worker_prefetch,
        batch_size=getattr(module, "BATCH_SIZE", settings.worker_batch_size),
        batch_window_s=getattr(module, "BATCH_WINDOW_MS", settings.worker_batch_window_ms) / 1000,
    )


def build_runner(
    module: ModuleType, settings: Settings, session_factory: sessionmaker[Session]
) -> tuple[Runner, ConsumerConfig]:
    """The worker's runner (its own, or a BatchRunner over its handlers) and its consumer settings."""
    config = consumer_config(settings, module)
    own_runner = getattr(module, "build_runner", None)
    if own_runner is not None:
        runner: Runner = own_runner(settings, session_factory, config)
        return runner, config
    handler: Handler = module.build_handler(settings)
    build_batch_handler = getattr(module, "build_batch_handler", None)
    batch_handler: BatchHandler | None = build_batch_handler(settings) if build_batch_handler else None
    return BatchRunner(handler, session_factory, config, batch_handler), config


def run_worker(name: str, settings: Settings, stop: threading.Event | None = None) -> None:
    """Consume the worker's queue until `stop` is set (SIGTERM and SIGINT set it)."""
    stop = stop or stop_on_signals("finishing the current batch")
    declare_all(settings.amqp_url, settings.retry_delays_ms, settings.order_retry_interval_s * 1000)
    module = importlib.import_module(WORKER_MODULES[name])
    connections = getattr(module, "database_connections", None)
    engine = make_engine(settings.database_url, connections(settings) if connections else DEFAULT_POOL_SIZE)
    session_factory = make_session_factory(engine)
    runner, config = build_runner(module, settings, session_factory)
    start = getattr(module, "start_background", None)
    publisher = ConfirmingPublisher(settings.amqp_url, confirm_timeout_s=settings.publish_confirm_timeout_s)
    background: list[BackgroundLoop] = start(settings, session_factory, publisher, config, stop) if start else []
    logger.info("worker %s starting", name)
    try:
        Consumer(WORK_QUEUES[name], runner, config, publisher).run(stop)
    finally:
        stop.set()
        # No time limit: a push under way ends within the ERP client's timeouts and retries, and
        # one cut short would be pushed again. The orchestrator's own stop timeout is the bound.
        for loop in background:
            loop.join()
        publisher.close()
        engine.dispose()
        logger.info("worker %s stopped", name)
    failed = next((loop for loop in background if loop.failure is not None), None)
    if failed is not None:
        raise WorkerFailed(f"worker {name} stopped: {failed.name} failed: {failed.failure}") from failed.failure
