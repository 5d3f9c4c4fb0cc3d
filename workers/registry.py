"""Every kind of worker process, once: the CLI, `erp-sync dev` and the deploy checks read this list.

A consuming worker takes messages from its work queue (`shared.topology`) through the one
consumer; a scheduled worker runs a loop of its own. Each record says everything the process
needs, typed, so nothing is discovered on a module at run time. The record's functions import
their worker on first call: the sweep's processes, which read this list too, have a memory
target that SQLAlchemy and pika alone would exceed.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from erp_sync.shared.settings import PREFETCH_ROUNDS, Settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE, WORK_QUEUES, WorkQueue

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from erp_sync.shared.consumer import BatchHandler, ConsumerConfig, Handler, Runner
    from erp_sync.shared.publisher import ConfirmingPublisher
    from erp_sync.workers.background import BackgroundLoop

    # The last argument is set once the worker is told to stop (a handler may cut its own work short).
    RunnerFactory = Callable[[Settings, sessionmaker[Session], ConsumerConfig, threading.Event], Runner]
    LoopsFactory = Callable[
        [Settings, sessionmaker[Session], ConfirmingPublisher, ConsumerConfig, threading.Event],
        list[BackgroundLoop],
    ]


# The message under way and the next one at hand.
MEDIA_PREFETCH = 2


@dataclass(frozen=True)
class ConsumingWorker:
    """A worker that consumes its work queue; `batch_*` of None take WORKER_BATCH_SIZE/_WINDOW_MS."""

    name: str
    queue: WorkQueue
    build_runner: RunnerFactory
    batch_size: int | None = None
    batch_window_ms: int | None = None
    database_connections: Callable[[Settings], int] | None = None
    start_loops: LoopsFactory | None = None
    needs_erp: bool = False
    # Queues its background loops consume besides `queue`: their depths go on its /metrics too.
    other_queues: tuple[WorkQueue, ...] = ()
    # Whether its /metrics carries the database's figures (orders, holds, sweeps): one worker kind does.
    exports_database_figures: bool = False
    # How far below the other workers' its process runs (os.nice), when its work must yield the CPU to theirs.
    nice: Callable[[Settings], int] | None = None
    # Batches under way at once, each in a thread and a transaction of its own (`ConcurrentConsumer`),
    # and the bodies one may hold past its first message (None: only WORKER_BATCH_SIZE bounds it).
    concurrent_batches: Callable[[Settings], int] = lambda _settings: 1
    batch_bytes: int | None = None
    # Messages it takes ahead of its work (None: WORKER_PREFETCH).
    prefetch: int | None = None

    @property
    def queues(self) -> tuple[WorkQueue, ...]:
        return (self.queue, *self.other_queues)

    def runs_batches_concurrently(self, settings: Settings) -> bool:
        """Whether it runs on the concurrent consumer: several batches at once, or batches bounded by bytes."""
        return self.concurrent_batches(settings) > 1 or self.batch_bytes is not None

    def prefetch_of(self, settings: Settings) -> int:
        """The messages RabbitMQ may hand one process unacked, whose bodies its memory holds."""
        prefetch = self.prefetch or settings.worker_prefetch
        if not self.runs_batches_concurrently(settings):
            return prefetch
        # Twice the batches under way: the next batch is at hand when a thread frees up.
        batch_size = self.batch_size or settings.worker_batch_size
        return max(prefetch, PREFETCH_ROUNDS * self.concurrent_batches(settings) * batch_size)


@dataclass(frozen=True)
class ScheduledWorker:
    """A worker that runs its own loop until SIGTERM (it consumes no queue)."""

    name: str
    run: Callable[[Settings], None]
    needs_erp: bool = False


Worker = ConsumingWorker | ScheduledWorker


def batches_of(
    handler: Handler, sessions: sessionmaker[Session], config: ConsumerConfig,
    batch_handler: BatchHandler | None = None,
) -> Runner:
    """Batches of one handler's messages, each in a savepoint, or through a faster whole-batch handler."""
    from erp_sync.shared.batch_runner import BatchRunner

    return BatchRunner(handler, sessions, config, batch_handler)


def _catalog(settings: Settings, sessions: sessionmaker[Session], config: ConsumerConfig,
             _stop: threading.Event) -> Runner:
    from erp_sync.workers import catalog

    return batches_of(catalog.build_handler(settings), sessions, config, catalog.build_batch_handler(settings))


def _inventory(settings: Settings, sessions: sessionmaker[Session], config: ConsumerConfig,
               _stop: threading.Event) -> Runner:
    from erp_sync.workers import inventory

    return batches_of(inventory.build_handler(settings), sessions, config, inventory.build_batch_handler(settings))


def _catalog_batches(settings: Settings) -> int:
    return settings.catalog_batch_concurrency


def _media_nice(settings: Settings) -> int:
    return settings.media_nice


def _media(settings: Settings, sessions: sessionmaker[Session], config: ConsumerConfig,
           stop: threading.Event) -> Runner:
    from erp_sync.workers import media

    return batches_of(media.build_handler(settings, stop), sessions, config)


def _orders(settings: Settings, sessions: sessionmaker[Session], config: ConsumerConfig,
            _stop: threading.Event) -> Runner:
    from erp_sync.workers import orders

    return orders.build_runner(settings, sessions, config)


def _orders_connections(settings: Settings) -> int:
    from erp_sync.workers import orders

    return orders.database_connections(settings)


def _orders_loops(
    settings: Settings, sessions: sessionmaker[Session], publisher: ConfirmingPublisher,
    config: ConsumerConfig, stop: threading.Event,
) -> list[BackgroundLoop]:
    from erp_sync.workers import orders

    return orders.start_background(settings, sessions, publisher, config, stop)


def _reconcile(settings: Settings) -> None:
    from erp_sync.workers.reconcile_schedule import run_reconcile_worker

    run_reconcile_worker(settings)


WORKERS: dict[str, Worker] = {
    worker.name: worker
    for worker in (
        # Two batches at once by default: one decodes and builds its statements while PostgreSQL runs
        # the other's. 4 MiB of bodies a batch: 100 groups of 10 variants, or 11 of 1,000, whose
        # decoded variants would otherwise hold a pod's memory many times over.
        ConsumingWorker("catalog", WORK_QUEUES["catalog"], _catalog, concurrent_batches=_catalog_batches,
                        batch_bytes=4 * 2**20),
        ConsumingWorker("inventory", WORK_QUEUES["inventory"], _inventory),
        # One message (up to 1,000 images) per transaction: a slow or failing download must not hold
        # back or replay another message's. The next one at hand, no more: a message taken ahead is
        # work no other pod can take, and no longer counted ready, which is what KEDA scales on
        # (WORKER_PREFETCH, 200, hid 200 groups' images from it and from the console).
        ConsumingWorker("media", WORK_QUEUES["media"], _media, batch_size=1, nice=_media_nice,
                        prefetch=MEDIA_PREFETCH),
        ConsumingWorker(
            "orders", WORK_QUEUES["orders"], _orders,
            # No wait for a batch to fill: under load orders pile up while the last batch is
            # handled, and a lone order should not wait for company.
            batch_window_ms=0,
            database_connections=_orders_connections,
            start_loops=_orders_loops,
            needs_erp=True,
            other_queues=(ORDERS_PUSH_QUEUE,),
            exports_database_figures=True,
        ),
        ScheduledWorker("reconcile", _reconcile, needs_erp=True),
    )
}
