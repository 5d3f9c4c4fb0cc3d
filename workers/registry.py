"""Every kind of worker process, once: the CLI, `erp-sync dev` and the deploy checks read this list.

A consuming worker takes messages from its work queue (`shared.topology`) through the one
consumer; a scheduled worker runs a loop of its own. Each record says everything the process
needs, typed, so nothing is discovered on a module at run time.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from erp_sync.shared.consumer import BatchHandler, BatchRunner, ConsumerConfig, Handler, Runner
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import WORK_QUEUES, WorkQueue
from erp_sync.workers import catalog, inventory, media, orders
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.reconcile_schedule import run_reconcile_worker

RunnerFactory = Callable[[Settings, sessionmaker[Session], ConsumerConfig], Runner]
LoopsFactory = Callable[
    [Settings, sessionmaker[Session], ConfirmingPublisher, ConsumerConfig, threading.Event], list[BackgroundLoop]
]


def per_message(
    build_handler: Callable[[Settings], Handler],
    build_batch_handler: Callable[[Settings], BatchHandler] | None = None,
) -> RunnerFactory:
    """Batches of a handler's messages, each in a savepoint, or through a faster whole-batch handler."""

    def build(settings: Settings, session_factory: sessionmaker[Session], config: ConsumerConfig) -> Runner:
        batch_handler = build_batch_handler(settings) if build_batch_handler else None
        return BatchRunner(build_handler(settings), session_factory, config, batch_handler)

    return build


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


@dataclass(frozen=True)
class ScheduledWorker:
    """A worker that runs its own loop until SIGTERM (it consumes no queue)."""

    name: str
    run: Callable[[Settings], None]
    needs_erp: bool = False


Worker = ConsumingWorker | ScheduledWorker

WORKERS: dict[str, Worker] = {
    worker.name: worker
    for worker in (
        ConsumingWorker("catalog", WORK_QUEUES["catalog"], per_message(catalog.build_handler)),
        ConsumingWorker(
            "inventory", WORK_QUEUES["inventory"],
            per_message(inventory.build_handler, inventory.build_batch_handler),
        ),
        # One image per transaction: a slow or failing download must not hold back or replay others.
        ConsumingWorker("media", WORK_QUEUES["media"], per_message(media.build_handler), batch_size=1),
        ConsumingWorker(
            "orders", WORK_QUEUES["orders"], orders.build_runner,
            # No wait for a batch to fill: under load orders pile up while the last batch is
            # handled, and a lone order should not wait for company.
            batch_window_ms=0,
            database_connections=orders.database_connections,
            start_loops=orders.start_background,
            needs_erp=True,
        ),
        ScheduledWorker("reconcile", run_reconcile_worker, needs_erp=True),
    )
}
