"""The registry is the one list of workers: every work queue has its worker, every worker its command."""
from __future__ import annotations

from typing import cast

import pytest

from erp_sync.cli import build_parser
from erp_sync.shared.consumer import Runner
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.settings import load_settings
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import consumer_config, consumer_for

# Queues a consuming worker reads beside its own: the orders worker pushes from erp-sync.orders-push.
SECOND_QUEUES = {"orders-push": "orders"}
# Declared for a sweep on demand; the reconcile worker runs on its schedule and reads no queue yet.
UNREAD_QUEUES = {"reconcile"}
UNUSED_RUNNER = cast(Runner, object())


def test_every_work_queue_is_read_by_one_registered_worker():
    own = {worker.queue.worker: name for name, worker in WORKERS.items() if isinstance(worker, ConsumingWorker)}
    readers = own | SECOND_QUEUES

    assert set(readers) == set(WORK_QUEUES) - UNREAD_QUEUES
    assert set(SECOND_QUEUES.values()) <= set(WORKERS)


def test_each_record_is_filed_under_its_own_name():
    assert all(name == worker.name for name, worker in WORKERS.items())


def test_the_worker_command_offers_exactly_the_registered_workers():
    args = build_parser().parse_args(["worker", "media"])
    commands = next(action for action in build_parser()._actions if action.dest == "command")  # noqa: SLF001
    name = next(action for action in commands.choices["worker"]._actions if action.dest == "name")  # noqa: SLF001

    assert args.name == "media"
    assert set(name.choices) == set(WORKERS)


def test_only_the_media_worker_yields_the_cpu_to_the_others():
    settings = load_settings(media_nice=7)
    niced = {name: worker.nice(settings) for name, worker in WORKERS.items()
             if isinstance(worker, ConsumingWorker) and worker.nice}

    assert niced == {"media": 7}


@pytest.mark.parametrize("batches", [1, 2])
def test_the_catalog_worker_applies_as_many_batches_at_once_as_its_setting_says(batches):
    settings = load_settings(catalog_batch_concurrency=batches)
    catalog = WORKERS["catalog"]
    assert isinstance(catalog, ConsumingWorker)

    # Neither the runner nor the publisher (which connects on its first publish) is used until the consumer runs.
    consumer = consumer_for(catalog, settings, runner=UNUSED_RUNNER, config=consumer_config(settings, catalog),
                            publisher=ConfirmingPublisher(settings.amqp_url))

    assert consumer.concurrency == batches
    # A catalog batch stays bounded by its bodies' bytes, one at a time too: 1,000-variant groups add up.
    assert consumer.batch_bytes == 4 * 2**20


def test_only_the_catalog_worker_applies_more_than_one_batch_at_once():
    settings = load_settings()
    batches = {name: worker.concurrent_batches(settings) for name, worker in WORKERS.items()
               if isinstance(worker, ConsumingWorker)}

    assert batches == {name: 2 if name == "catalog" else 1 for name in batches}
