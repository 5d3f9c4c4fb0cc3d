"""Backpressure end to end: a catalog queue at its bound makes the door answer 503, and nothing is lost."""
from __future__ import annotations

import pytest
from sqlalchemy import select, text

from erp_sync.ingress import create_app
from erp_sync.shared.models import ProductGroup
from erp_sync.shared.topology import QueueBound
from tests.support.amqp import drain
from tests.support.bulk import big_group, bounded_vhost, consuming
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.settings import WEBHOOK_SECRET
from tests.support.storefront import closed_after
from tests.support.waiting import wait_for

BOUND = QueueBound(max_length=5, max_bytes=10 * 1024 * 1024)


@pytest.fixture
def bounded_settings(settings_factory):
    with bounded_vhost(BOUND) as url:
        yield settings_factory(amqp_url=url, queue_max_length=BOUND.max_length, queue_max_bytes=BOUND.max_bytes,
                               unavailable_retry_after_s=7)


@pytest.fixture
def door(bounded_settings):
    yield from closed_after(create_app(bounded_settings))


def post(client, event: dict):
    body = encode(event)
    return client.post("/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET))


def test_a_stopped_worker_turns_into_503_and_every_event_is_applied_once_retried(
    door, bounded_settings, committed_session
):
    client = door.test_client()

    # given the catalog worker stopped, the ERP pushes until the door says 503
    accepted, refused = [], []
    while not refused:
        event = big_group(variants=2, images=1)
        response = post(client, event)
        assert response.status_code in (202, 503), response.get_json()
        (accepted if response.status_code == 202 else refused).append(event)
        assert len(accepted) < 10 * BOUND.max_length, "the bound never refused a publish"
    for _ in range(3):  # and a few more that are refused too
        refused.append(big_group(variants=2, images=1))
        response = post(client, refused[-1])
        assert response.status_code == 503

    # then the door says when to come back, stock still flows, and /metrics shows the queue at its bound
    assert response.headers["Retry-After"] == "7"
    assert response.get_json()["error"] == "the event's queue is full; retry later"
    assert post(client, inventory_event()).status_code == 202
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'erp_sync_queue_max_messages{queue="erp-sync.catalog"} 5.0' in metrics
    assert f'erp_sync_queue_messages{{queue="erp-sync.catalog"}} {float(len(accepted))}' in metrics

    # when the catalog worker starts and the ERP retries what was refused, until accepted (the
    # media queue, bounded too, emptied as a media worker would, or it would hold the catalog back)
    def retried(event: dict) -> bool:
        drain(bounded_settings.amqp_url, "erp-sync.media")
        return post(client, event).status_code == 202

    def all_applied() -> bool:
        drain(bounded_settings.amqp_url, "erp-sync.media")
        return set(committed_session.scalars(
            select(ProductGroup.product_group_id).where(ProductGroup.product_group_id.in_(groups)))) == set(groups)

    groups = [event["data"]["product_group_id"] for event in accepted + refused]
    with consuming("catalog", bounded_settings):
        for event in refused:
            wait_for(lambda event=event: retried(event), timeout=30, interval=0.2)
        wait_for(all_applied, timeout=60, interval=0.2)

    # then every event was applied, once: none went round a retry or into parking
    assert drain(bounded_settings.amqp_url, "erp-sync.catalog.parked") == []
    assert len(groups) == len(set(groups)) == len(accepted) + len(refused)
    ids = [event["event_id"] for event in accepted + refused]
    recorded = committed_session.execute(
        text("SELECT event_id, count(*) FROM processed_events WHERE event_id = ANY(:ids) GROUP BY event_id"),
        {"ids": ids}).all()
    assert sorted(recorded) == sorted((event_id, 1) for event_id in ids)
