"""The sandbox's webhook deliveries without an ingress: when it retries, when it stops, what an answer means."""
from __future__ import annotations

import pytest

from erp_sync.sandbox_erp.delivery import next_attempt_at, outcome, retry_delay
from tests.support.sandbox import admin, deliveries


def test_without_a_webhook_url_events_are_kept_but_not_sent(client):
    admin(client, "sale", {"sku": "IPH15-128-BLK"})

    [delivery] = deliveries(client)
    assert delivery["status"] == "not_sent"


@pytest.mark.parametrize(
    "failures, seconds", [(1, 60), (2, 300), (3, 900), (4, 3600), (5, 21600), (6, 21600), (20, 21600)]
)
def test_retry_delays_follow_spec_7_1(failures, seconds):
    assert retry_delay(failures, 1.0) == seconds
    assert retry_delay(failures, 0.001) == pytest.approx(seconds * 0.001)


def test_retries_stop_at_the_24h_horizon():
    assert next_attempt_at(0, 86000, 6, 1.0) == 86400
    assert next_attempt_at(0, 86400, 7, 1.0) is None


@pytest.mark.parametrize("status, result", [(202, "delivered"), (200, "delivered"), (400, "data_error"),
                                            (401, "rejected"), (500, "pending"), (502, "pending"),
                                            (503, "pending"), (504, "pending"), (None, "pending")])
def test_outcome_of_an_answer(status, result):
    assert outcome(status) == result


def test_publishing_the_catalog_sends_every_group_as_catalog_update(client):
    # when the ERP is asked for a first load of the shop
    answer = admin(client, "catalog", {})

    # then every group it holds goes out as one catalog.update carrying its variants
    sent = [d for d in deliveries(client) if d["event_type"] == "catalog.update"]
    assert answer["groups"] == len(sent) > 0
    assert answer["variants"] >= answer["groups"]
