"""Slow clients cannot close the door: 200 connections trickling a byte a second take no thread.

`erp-sync ingress` runs as production runs it (2 worker processes), with a read timeout of
READ_TIMEOUT_S. While the slow connections hold on, a signed webhook and /healthz are answered
within 1 s (issue 14); then the server cuts every slow connection once the timeout is up.
"""
from __future__ import annotations

import time

import pytest
import requests

from tests.support import cli
from tests.support.amqp import drain
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.settings import WEBHOOK_SECRET
from tests.support.slow_clients import SLOW_BODY, SLOW_HEADERS, SlowClients

SLOW_CONNECTIONS = 200
READ_TIMEOUT_S = 4.0
ANSWER_WITHIN_S = 1.0
# The server checks its deadlines on timers of its own; the machine may be busy with other tests.
CUT_SLACK_S = 2.0


@pytest.fixture(scope="module")
def door(migrated_database_url, topology):
    with cli.serving("ingress", DATABASE_URL=migrated_database_url, AMQP_URL=topology, ERP_WEBHOOK_SECRET=WEBHOOK_SECRET,
                     INGRESS_WORKERS="2", HTTP_READ_TIMEOUT_S=str(READ_TIMEOUT_S)) as port:
        yield port


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("opening", [SLOW_HEADERS, SLOW_BODY], ids=["slow headers", "slow body"])
def test_slow_clients_leave_the_door_open_and_are_cut_after_the_read_timeout(door, broker, opening):
    # given 200 connections sending their request a byte a second
    slow = SlowClients(door, SLOW_CONNECTIONS, opening)
    try:
        body = encode(inventory_event())

        # when the ERP posts a signed webhook and the orchestrator probes /healthz meanwhile
        webhook, webhook_s = timed(lambda: requests.post(
            f"http://127.0.0.1:{door}/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET),
            timeout=10))
        health, health_s = timed(lambda: requests.get(f"http://127.0.0.1:{door}/healthz", timeout=10))
        waiting = slow.still_open()

        # then both are answered within a second while every slow connection is still held
        assert (webhook.status_code, health.status_code) == (202, 200)
        assert webhook_s < ANSWER_WITHIN_S and health_s < ANSWER_WITHIN_S, (webhook_s, health_s)
        assert waiting == SLOW_CONNECTIONS
        assert [m.body for m in drain(broker, "erp-sync.inventory")] == [body]

        # and the server closes every slow connection once the read timeout is up
        closed = slow.wait_until_closed(READ_TIMEOUT_S + CUT_SLACK_S)
        assert len(closed) == SLOW_CONNECTIONS, f"{SLOW_CONNECTIONS - len(closed)} still open"
        assert min(closed) >= READ_TIMEOUT_S - 0.5, min(closed)
    finally:
        slow.close()
