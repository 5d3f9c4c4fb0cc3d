from __future__ import annotations

import re
import socket
import time

import pika
import requests

from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import ConfirmingPublisher
from erp_sync.shared.env_file import read_env_file
from tests.support import cli
from tests.support.waiting import wait_for
from tests.support.factories import encode, inventory_event, signed_headers


def test_dev_runs_the_whole_flow_and_stops_everything_on_sigterm(migrated_database_url, broker, committed_session,
                                                               tmp_path):
    # given `erp-sync dev` on a free port, no secret set: it makes them and prints them
    port, api_port, sandbox_port = cli.free_port(), cli.free_port(), cli.free_port()
    process = cli.start("dev", "--port", str(port), "--api-port", str(api_port), "--sandbox-port", str(sandbox_port),
                        cwd=tmp_path, ERP_SYNC_ENV_FILE=".erp-sync.env", DATABASE_URL=migrated_database_url, AMQP_URL=broker, STOREFRONT_API_TOKEN="",
                        SANDBOX_ERP_API_TOKEN="", SANDBOX_ERP_ADMIN_TOKEN="", SANDBOX_ERP_WEBHOOK_SECRET="",
                        INGRESS_WORKERS="1", INGRESS_THREADS="4", API_WORKERS="1", API_THREADS="4",
                        SANDBOX_ERP_GROUPS="0", SANDBOX_ERP_TIME_SCALE="0.001")
    shop = requests.Session()
    try:
        made = wait_for(lambda: printed_exports(cli.output_of(process)), timeout=90)
        assert "secrets made for this run: ERP_WEBHOOK_SECRET, STOREFRONT_API_TOKEN, CONSOLE_PASSWORD, ERP_API_TOKEN" \
            in cli.output_of(process)
        # and writes the same exports where a second shell's erp-sync finds them
        assert read_env_file(tmp_path / ".erp-sync.env") == made
        assert made["SANDBOX_ERP_URL"] == made["ERP_BASE_URL"] == f"http://127.0.0.1:{sandbox_port}"
        secret = made["ERP_WEBHOOK_SECRET"]
        shop.headers["Authorization"] = f"Bearer {made['STOREFRONT_API_TOKEN']}"
        cli.wait_for_port(port, process)
        cli.wait_for_port(api_port, process)
        door, api = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{api_port}"

        # when the ERP sends a stock figure
        body = encode(inventory_event(sku="SKU-DEV", new_quantity=12))
        answer = requests.post(f"{door}/webhooks/erp", data=body, headers=signed_headers(body, secret),
                               timeout=10)

        # then the inventory worker it started applies it, visible in the storefront's API, not on the door
        assert answer.status_code == 202
        shown = wait_for(lambda: (r := shop.get(f"{api}/api/v1/inventory/SKU-DEV", timeout=5)).ok and r.json())
        assert shown["erp_quantity"] == 12
        assert requests.get(f"{door}/api/v1/inventory/SKU-DEV", timeout=5).status_code == 404
        assert requests.get(f"{api}/api/v1/inventory/SKU-DEV", timeout=5).status_code == 401
        # and the operator console opens with the user and password the banner printed
        console = requests.get(f"{api}/console", auth=(made["CONSOLE_USER"], made["CONSOLE_PASSWORD"]), timeout=10)
        assert console.status_code == 200 and "<h1>erp-sync console</h1>" in console.text
        assert f"{api}/console" in cli.output_of(process)

        # and a product created in the sandbox ERP, then sold in its store, reaches the shop by webhook
        cli.wait_for_port(sandbox_port, process)
        erp = f"http://127.0.0.1:{sandbox_port}/admin"
        auth = {"Authorization": f"Bearer {made['ERP_API_TOKEN']}"}
        group = requests.post(f"{erp}/products", json={}, headers=auth, timeout=10).json()
        sku = group["variants"][0]["sku"]
        before = wait_for(lambda: (r := shop.get(f"{api}/api/v1/products/{sku}", timeout=5)).ok and r.json())
        requests.post(f"{erp}/sale", json={"sku": sku, "quantity": 1}, headers=auth, timeout=10).raise_for_status()
        wait_for(lambda: shop.get(f"{api}/api/v1/inventory/{sku}", timeout=5).json()["erp_quantity"]
                 == before["stock"]["erp_quantity"] - 1)

        # and an online order reaches the sandbox ERP through the orders worker
        publisher = ConfirmingPublisher(broker)
        publish_order(publisher, {"order_id": "ORD-DEV-1", "order_date": "2026-11-25T10:15:00Z",
                                  "customer_ref": "CUST-555",
                                  "line_items": [{"sku": sku, "quantity": 1, "unit_price": "10.00"}]})
        publisher.close()
        wait_for(lambda: shop.get(f"{api}/api/v1/orders/ORD-DEV-1", timeout=5).json().get("status")
                 == "synced")
    finally:
        started = time.monotonic()
        output = cli.stop(process)

    # and SIGTERM stops it, children included, in good time
    assert process.returncode == 0, output
    assert time.monotonic() - started < 25
    assert consumers_of(broker, ["erp-sync.catalog", "erp-sync.inventory", "erp-sync.media", "erp-sync.orders",
                                 "erp-sync.orders-push"]) == 0


def printed_exports(output: str) -> dict[str, str]:
    """What dev tells a second shell to export, from its `export NAME=value ...` line."""
    line = re.search(r"in another shell: export (.*)", output)
    return dict(pair.split("=", 1) for pair in line.group(1).split()) if line else {}


def consumers_of(amqp_url: str, queues: list[str]) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        return sum(channel.queue_declare(q, passive=True).method.consumer_count for q in queues)
    finally:
        connection.close()


def test_dev_with_a_placeholder_secret_stops_before_starting_anything(migrated_database_url, broker):
    result = cli.run("dev", DATABASE_URL=migrated_database_url, AMQP_URL=broker, ERP_WEBHOOK_SECRET="changeme")

    assert result.returncode == 2
    assert "ERP_WEBHOOK_SECRET" in result.stderr


def test_a_taken_port_stops_dev_before_anything_starts_and_names_the_flag_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = cli.run("dev", "--port", str(port), "--api-port", str(cli.free_port()),
                         "--sandbox-port", str(cli.free_port()))

    assert result.returncode == 2
    assert result.stdout.splitlines() == [f"dev      | port {port} (the ingress) is taken: choose another with --port N"]
