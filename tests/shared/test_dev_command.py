from __future__ import annotations

import time

import pika
import requests

from tests import cli
from tests.conftest import WEBHOOK_SECRET
from tests.e2e.conftest import wait_for
from tests.factories import encode, inventory_event, signed_headers


def test_dev_runs_the_whole_flow_and_stops_everything_on_sigterm(migrated_database_url, broker, committed_session):
    # given `erp-sync dev` on a free port
    port = cli.free_port()
    process = cli.start("dev", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="1", INGRESS_THREADS="4")
    try:
        cli.wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"

        # when the ERP sends a stock figure
        body = encode(inventory_event(sku="SKU-DEV", new_quantity=12))
        answer = requests.post(f"{base}/webhooks/erp", data=body, headers=signed_headers(body, WEBHOOK_SECRET),
                               timeout=10)

        # then the inventory worker it started applies it, visible in the read API
        assert answer.status_code == 202
        shown = wait_for(lambda: (r := requests.get(f"{base}/api/v1/inventory/SKU-DEV", timeout=5)).ok and r.json())
        assert shown["erp_quantity"] == 12
    finally:
        started = time.monotonic()
        output = cli.stop(process)

    # and SIGTERM stops it, children included, in good time
    assert process.returncode == 0, output
    assert time.monotonic() - started < 25
    assert consumers_of(broker, ["erp-sync.catalog", "erp-sync.inventory", "erp-sync.media"]) == 0


def consumers_of(amqp_url: str, queues: list[str]) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        return sum(channel.queue_declare(q, passive=True).method.consumer_count for q in queues)
    finally:
        connection.close()


def test_dev_without_a_secret_stops_before_starting_anything(migrated_database_url, broker):
    result = cli.run("dev", DATABASE_URL=migrated_database_url, AMQP_URL=broker)

    assert result.returncode == 2
    assert "ERP_WEBHOOK_SECRET" in result.stderr
