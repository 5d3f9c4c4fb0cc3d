"""The media worker takes only the next message ahead: its backlog stays ready, for KEDA and for other pods."""
from __future__ import annotations

import threading

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.consumer import Done
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import consumer_config, consumer_for
from tests.support.waiting import wait_for

MEDIA = WORK_QUEUES["media"]


class HeldRunner:
    """A runner whose first batch waits until released, as a message of slow image hosts does."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def run(self, batch):
        self.started.set()
        self.release.wait(30)
        return [Done() for _ in batch]


def test_a_media_backlog_stays_ready_while_the_worker_downloads_one_message(broker, settings_factory):
    # given 20 media messages waiting, and WORKER_PREFETCH at its default (200)
    settings = settings_factory()
    assert settings.worker_prefetch == 200
    publisher = ConfirmingPublisher(broker)
    try:
        publisher.publish_all([OutgoingMessage(MEDIA.exchange, MEDIA.routing_key, b"{}", f"media-{n}")
                               for n in range(20)])
    finally:
        publisher.close()
    media = WORKERS["media"]
    assert isinstance(media, ConsumingWorker)
    runner = HeldRunner()
    config = consumer_config(settings, media)
    consumer = consumer_for(media, settings, runner, config, ConfirmingPublisher(broker))
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)

    # when the media worker works on its first message
    thread.start()
    try:
        assert runner.started.wait(15)

        # then it holds that one and the next, and the other 18 stay ready: counted by KEDA's AMQP
        # trigger and the console, and free for another media pod (before: all 20 were unacked here)
        wait_for(lambda: queue_depths(broker)[MEDIA.name] == 18, timeout=5)
    finally:
        stop.set()
        runner.release.set()
        thread.join(15)
    # and once it stops, the one it took ahead is ready again: nothing but the finished one left the queue
    wait_for(lambda: queue_depths(broker)[MEDIA.name] == 19, timeout=15)
