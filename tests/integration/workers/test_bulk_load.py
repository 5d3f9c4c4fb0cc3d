"""A bulk catalog push (issue 16, scaled down): no reconnect, no duplicate follow-up, one download per image."""
from __future__ import annotations

import json
import logging

from sqlalchemy import func, select

from erp_sync.shared.broker import queue_depths
from erp_sync.shared.models import Media, MediaStatus, ProductGroup
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support.amqp import drain
from tests.support.bulk import big_group, consuming
from tests.support.factories import encode
from tests.support.waiting import wait_for

EVENTS, VARIANTS, IMAGES = 20, 500, 2


def test_a_bulk_push_with_the_media_worker_stopped_asks_once_for_each_image(
    settings_factory, broker, committed_session, caplog
):
    # given 20 groups of 500 variants with 2 images each waiting for the catalog worker, and a
    # confirm timeout far below what publishing 20,000 per-image follow-ups used to take
    settings = settings_factory(publish_confirm_timeout_s=0.001)
    events = [big_group(VARIANTS, IMAGES) for _ in range(EVENTS)]
    groups = [event["data"]["product_group_id"] for event in events]
    publisher = ConfirmingPublisher(settings.amqp_url)
    publisher.publish_all([OutgoingMessage(EVENTS_EXCHANGE, "catalog.update", encode(event), event["event_id"])
                           for event in events])
    publisher.close()

    # when the catalog worker takes them in, the media worker not running
    with caplog.at_level(logging.INFO, logger="erp_sync.shared"), consuming("catalog", settings) as consumer:
        wait_for(lambda: committed_session.scalar(
            select(func.count()).select_from(ProductGroup).where(ProductGroup.product_group_id.in_(groups))) == EVENTS,
            timeout=120)
        # (one message names the 1,000 images of a group)
        wait_for(lambda: queue_depths(settings.amqp_url)["erp-sync.media"] >= EVENTS, timeout=60)

    # then it never reconnected, and each pending image is asked for exactly once
    assert consumer.connections == 1
    assert "lost RabbitMQ" not in caplog.text
    landed = drain(settings.amqp_url, "erp-sync.media")
    assert len({m.properties.message_id for m in landed}) == len(landed) <= EVENTS
    urls = [image["url"] for m in landed for image in json.loads(m.body)["images"]]
    pending = committed_session.scalars(
        select(Media.url).where(Media.status == MediaStatus.PENDING, Media.sku.in_(skus_of(events)))).all()
    assert len(urls) == len(set(urls)) == len(pending) == EVENTS * VARIANTS * IMAGES
    assert set(urls) == set(pending)


def skus_of(events: list[dict]) -> list[str]:
    return [variant["sku"] for event in events for variant in event["data"]["variants"]]
