"""A bulk catalog push for tests: many large groups, and a worker's consumer run in a thread."""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from erp_sync.shared.broker import declare_all
from erp_sync.shared.consumer import Consumer
from erp_sync.shared.db import make_engine, make_session_factory
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import QueueBound
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import consumer_config, consumer_for
from tests.support import services
from tests.support.factories import catalog_event
from tests.support.settings import TEST_RETRY_DELAYS_MS


def big_group(variants: int, images: int = 2) -> dict[str, Any]:
    """A catalog.update of one new group with `variants` SKUs, each with `images` images of its own."""
    group = f"PG-{uuid.uuid4().hex[:10]}"
    event = catalog_event(product_group_id=group, variants=[
        {
            "sku": f"{group}-{n}",
            "display_name": f"Variant {n}",
            "price": 10.0,
            "stock_quantity": 5,
            "attributes": {},
            "media": [{"url": f"https://cdn.example/{group}/{n}/{i}.jpg", "is_main": i == 0} for i in range(images)],
        }
        for n in range(variants)
    ])
    return event


@contextmanager
def consuming(worker_name: str, settings: Settings) -> Iterator[Consumer]:
    """The worker's consumer, consuming in a thread until the block ends."""
    worker = WORKERS[worker_name]
    assert isinstance(worker, ConsumingWorker)
    engine = make_engine(settings.database_url)
    config = consumer_config(settings, worker)
    publisher = ConfirmingPublisher(settings.amqp_url, confirm_timeout_s=settings.publish_confirm_timeout_s)
    # As `erp-sync worker` builds it: the catalog's runs two batches at once (ConcurrentConsumer).
    stop = threading.Event()
    consumer = consumer_for(worker, settings, worker.build_runner(settings, make_session_factory(engine), config, stop),
                            config, publisher)
    thread = threading.Thread(target=consumer.run, args=(stop,), name=f"{worker_name}-consumer", daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        stop.set()
        thread.join(timeout=30)
        publisher.close()
        engine.dispose()


@contextmanager
def bounded_vhost(bound: QueueBound) -> Iterator[str]:
    """A vhost of its own whose work queues are declared with `bound` (queue arguments never change)."""
    with services.rabbitmq_server() as (server, management), services.private_vhost(server, management) as url:
        declare_all(url, TEST_RETRY_DELAYS_MS, bound=bound)
        yield url
