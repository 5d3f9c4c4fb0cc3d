"""A worker whose follow-ups meet a full queue waits for room, connected, instead of reconnecting."""
from __future__ import annotations

import json

import pytest

from sqlalchemy import select

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.errors import QueueFull
from erp_sync.shared.internal_messages import MediaBatch, MediaDownload
from erp_sync.shared.models import ProductGroup
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE, QueueBound
from tests.support.amqp import drain
from tests.support.bulk import big_group, bounded_vhost, consuming
from tests.support.factories import encode
from tests.support.waiting import wait_for

BOUND = QueueBound(max_length=2, max_bytes=1024 * 1024)


def filler(n: int) -> OutgoingMessage:
    image = MediaDownload(media_id=-n, sku="FILLER", url=f"https://cdn.example/{n}.jpg")
    return MediaBatch(images=(image,)).to_message()


def fill(publisher: ConfirmingPublisher) -> int:
    """Publish to the media queue until it refuses (a quorum queue may take a few past its bound); how many went in."""
    for n in range(1, 50):
        if publisher.publish_what_fits([filler(n)]):
            return n - 1
    raise AssertionError("the bound never refused a publish")


def test_follow_ups_refused_by_a_full_queue_go_out_once_there_is_room(settings_factory, committed_session):
    with bounded_vhost(BOUND) as url:
        # given the media queue at its bound (the media worker stopped)
        settings = settings_factory(amqp_url=url, queue_max_length=BOUND.max_length, queue_max_bytes=BOUND.max_bytes)
        publisher = ConfirmingPublisher(url)
        held = fill(publisher)
        event = big_group(variants=3, images=1)
        publisher.publish(OutgoingMessage(EVENTS_EXCHANGE, "catalog.update", encode(event), event["event_id"]))
        publisher.close()
        group = event["data"]["product_group_id"]

        with consuming("catalog", settings) as consumer:
            # when the catalog worker applies the group, its follow-up refused
            wait_for(lambda: committed_session.scalar(
                select(ProductGroup.product_group_id).where(ProductGroup.product_group_id == group)))
            assert queue_depths(url)["erp-sync.media"] == held
            # and the media worker then takes the queue's messages
            assert len(drain(url, "erp-sync.media")) == held
            landed = wait_for(lambda: drain(url, "erp-sync.media"), timeout=30)

        # then the follow-up went out once there was room, over the same connection, and the
        # event was acked (not redelivered)
        [follow_up] = landed
        assert {image["sku"] for image in json.loads(follow_up.body)["images"]} == {
            v["sku"] for v in event["data"]["variants"]}
        assert consumer.connections == 1
        assert queue_depths(url)["erp-sync.catalog"] == 0


def test_a_worker_stopped_while_its_follow_ups_wait_says_so_once_and_keeps_the_event(settings_factory, caplog):
    with bounded_vhost(BOUND) as url:
        # given the media queue at its bound and a catalog event whose follow-up it will refuse
        settings = settings_factory(amqp_url=url, queue_max_length=BOUND.max_length, queue_max_bytes=BOUND.max_bytes)
        publisher = ConfirmingPublisher(url)
        fill(publisher)
        event = big_group(variants=3, images=1)
        publisher.publish(OutgoingMessage(EVENTS_EXCHANGE, "catalog.update", encode(event), event["event_id"]))
        publisher.close()

        # when the catalog worker has been refused a few times, then is stopped (SIGTERM, a rollout)
        with caplog.at_level("INFO", logger="erp_sync.shared"), consuming("catalog", settings):
            wait_for(lambda: caplog.text.count("follow-ups refused as their queue is full") >= 3, timeout=15)

        # then the first refusal is a WARNING and the tries after it INFO; the stop is not told as
        # RabbitMQ lost and a reconnect (at most as a stop, at INFO); and the event waits on its
        # queue, unacked
        refusals = [r.levelname for r in caplog.records if "follow-ups refused as their queue is full" in r.getMessage()]
        assert refusals[0] == "WARNING" and set(refusals[1:]) == {"INFO"}, refusals
        assert "lost RabbitMQ" not in caplog.text and "reconnecting" not in caplog.text
        assert all(r.levelname == "INFO" for r in caplog.records if r.getMessage().startswith("stopped: "))
        wait_for(lambda: queue_depths(url)["erp-sync.catalog"] == 1)


def test_a_full_queue_is_told_apart_from_other_refusals(settings_factory):
    with bounded_vhost(BOUND) as url:
        publisher = ConfirmingPublisher(url)
        held = fill(publisher)
        try:
            with pytest.raises(QueueFull, match="queue full"):
                publisher.publish(filler(held + 2))
        finally:
            publisher.close()
