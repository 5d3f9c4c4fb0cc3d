"""The storefront's `publish_order` against a full orders queue: told so, and published again later."""
from __future__ import annotations

import json

import pytest

from erp_sync.shared.errors import QueueFull
from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.topology import WORK_QUEUES, QueueBound
from tests.support.amqp import drain
from tests.support.bulk import bounded_vhost
from tests.support.orders import order_body

ORDERS = WORK_QUEUES["orders"].name


def test_an_order_refused_by_a_full_queue_is_queued_once_published_again_after_it_drains():
    with bounded_vhost(QueueBound(max_length=2, max_bytes=1024 * 1024)) as url:
        publisher = ConfirmingPublisher(url)
        try:
            # given the orders queue at its bound (the orders worker stopped)
            with pytest.raises(QueueFull):
                for n in range(50):
                    refused = json.loads(order_body(f"ORD-FULL-{n}"))
                    publish_order(publisher, refused)
            queued = [landed.properties.message_id for landed in drain(url, ORDERS)]

            # when the storefront publishes the refused order again once the queue has room
            publish_order(publisher, refused)
        finally:
            publisher.close()

        # then nothing was queued of the refused try, and the second try queued it
        assert refused["order_id"] not in queued
        assert [landed.properties.message_id for landed in drain(url, ORDERS)] == [refused["order_id"]]
