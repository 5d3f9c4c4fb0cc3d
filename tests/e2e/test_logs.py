"""The workers' logs: JSON lines that name what each is about, and a quiet normal shutdown."""
from __future__ import annotations

import json
import signal

import requests

from erp_sync.shared.orders import publish_order
from erp_sync.shared.publisher import OutgoingMessage
from erp_sync.shared.topology import EVENTS_EXCHANGE
from tests.support import cli
from tests.support.factories import encode, inventory_event
from tests.support.orders import order
from tests.support.sandbox import TOKEN
from tests.support.waiting import wait_for


def json_lines(process) -> list[dict]:
    """Every line the process wrote, each parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in cli.output_of(process).splitlines() if line.strip()]


def test_json_lines_name_the_event_and_the_order_they_are_about(migrated_database_url, broker, sandbox, storefront,
                                                               committed_session):
    # given the inventory and orders workers writing JSON logs (their rows emptied after, with
    # committed_session's: the order's hold would otherwise stay on the SKU the next tests order)
    env = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker, "LOG_FORMAT": "json",
           "ERP_BASE_URL": sandbox.url, "ERP_API_TOKEN": TOKEN}
    workers = {name: cli.start("worker", name, **env) for name in ("inventory", "orders")}
    try:
        # when a stock figure arrives and an order is placed
        event = inventory_event(sku="LOG-SKU-1", new_quantity=7)
        storefront.publish(OutgoingMessage(EVENTS_EXCHANGE, "inventory.change", encode(event), event["event_id"]))
        publish_order(storefront, order("ORD-LOG-1"))
        applied = wait_for(lambda: [line for line in json_lines(workers["inventory"])
                                    if line.get("event_id") == event["event_id"]], timeout=30)
        pushed = wait_for(lambda: [line for line in json_lines(workers["orders"])
                                   if line.get("order_id") == "ORD-LOG-1" and "synced" in line["message"]], timeout=30)
    finally:
        outputs = [cli.stop(process) for process in workers.values()]

    # then every line is one JSON object, and those lines carry the ids, the attempt and the process
    assert applied[0] | {"time": None, "pid": None} == {
        "time": None, "pid": None, "level": "INFO", "process": "worker inventory", "logger": "erp_sync.workers.stock",
        "message": f"event {event['event_id']} for sku LOG-SKU-1 applied", "event_id": event["event_id"],
        "sku": "LOG-SKU-1"}
    assert pushed[0]["process"] == "worker orders" and pushed[0]["attempt"] == 1 and pushed[0]["level"] == "INFO"
    assert all(isinstance(json.loads(line), dict) for output in outputs for line in output.splitlines())


def test_a_worker_stopped_by_sigterm_logs_nothing_at_warning_or_above(migrated_database_url, broker, sandbox):
    # given the inventory and orders workers, consuming
    env = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker, "ERP_BASE_URL": sandbox.url,
           "ERP_API_TOKEN": TOKEN}
    workers = {name: cli.start("worker", name, **env) for name in ("inventory", "orders")}
    for process in workers.values():
        wait_for(lambda process=process: "consuming erp-sync." in cli.output_of(process), timeout=30)

    # when each is told to stop, as an orchestrator does
    for process in workers.values():
        process.send_signal(signal.SIGTERM)
    codes = [process.wait(timeout=30) for process in workers.values()]

    # then each stops cleanly, and says so without a warning or an error
    outputs = [cli.output_of(process) for process in workers.values()]
    assert codes == [0, 0], outputs
    assert all("stopped" in output for output in outputs)
    loud = [line for output in outputs for line in output.splitlines()
            if any(f" {level} " in line for level in ("WARNING", "ERROR", "CRITICAL")) or "Traceback" in line]
    assert loud == []


def test_the_sandbox_erp_writes_its_request_lines_without_colour_codes():
    # given `erp-sync sandbox-erp`, its output going to a file
    port = cli.free_port()
    process = cli.start("sandbox-erp", "--port", str(port), SANDBOX_ERP_API_TOKEN=TOKEN, SANDBOX_ERP_WEBHOOK_URL="")
    try:
        cli.wait_for_port(port, process)

        # when it answers a request it refuses and one it serves
        for headers in ({}, {"Authorization": f"Bearer {TOKEN}"}):
            requests.get(f"http://127.0.0.1:{port}/api/v1/inventory/snapshot", headers=headers, timeout=10)
        wait_for(lambda: cli.output_of(process).count('"GET /api/v1/inventory/snapshot') == 2)
    finally:
        output = cli.stop(process)

    # then the request lines are plain text
    requests_logged = [line for line in output.splitlines() if '"GET /api/v1/inventory/snapshot' in line]
    assert [line.rsplit('" ', 1)[1].split()[0] for line in requests_logged] == ["401", "200"]
    assert "\x1b" not in output and "\\x1b" not in output
