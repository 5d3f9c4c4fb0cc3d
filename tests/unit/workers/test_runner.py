"""The loops beside a worker's consumer: one that fails stops the worker and keeps its error; the consumer's prefetch."""
from __future__ import annotations

import threading

from erp_sync.shared.settings import MAX_CATALOG_BATCH_CONCURRENCY, MAX_WORKER_BATCH_SIZE, load_settings
from erp_sync.shared.topology import AMQP_SHORT_MAX
from erp_sync.workers.background import BackgroundLoop
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import consumer_config, consumer_for


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


def test_the_catalog_prefetch_fits_basic_qos_at_the_largest_batches_the_settings_allow():
    # given the largest batches and the most of them at once that the settings accept
    settings = load_settings(worker_batch_size=MAX_WORKER_BATCH_SIZE,
                             catalog_batch_concurrency=MAX_CATALOG_BATCH_CONCURRENCY)
    catalog = WORKERS["catalog"]
    assert isinstance(catalog, ConsumingWorker)

    # when the catalog worker builds its consumer (which prefetches rounds of its batches)
    consumer = consumer_for(catalog, settings, runner=None, config=consumer_config(settings, catalog),
                            publisher=object())

    # then its prefetch is one pika can send in basic.qos (an AMQP short)
    assert settings.worker_batch_size < consumer._config.prefetch <= AMQP_SHORT_MAX
