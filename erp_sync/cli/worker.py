"""`erp-sync worker NAME`: one worker process of the registry; ops run as many of each as needed."""
from __future__ import annotations

import argparse

from erp_sync.cli.exits import EXIT_OK
from erp_sync.shared.settings import Settings
from erp_sync.workers.registry import WORKERS, ConsumingWorker


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser("worker", help="run one worker process (scale each on its own)")
    worker.add_argument("name", choices=list(WORKERS))
    worker.set_defaults(run=run_worker_command)


def run_worker_command(settings: Settings, args: argparse.Namespace) -> int:
    worker = WORKERS[args.name]
    if isinstance(worker, ConsumingWorker):
        # Imported here: a scheduled worker needs neither pika nor SQLAlchemy.
        from erp_sync.workers.runner import run_worker

        run_worker(worker, settings)
    else:
        from erp_sync.workers.metrics_server import serving_metrics

        # A scheduled worker is alive while its process runs; its figures are in the database.
        with serving_metrics(settings, worker.name):
            worker.run(settings)
    return EXIT_OK
