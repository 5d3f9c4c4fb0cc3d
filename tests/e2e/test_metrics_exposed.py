"""Every process serves what the alert rules and the dashboard read; the ingress adds up its workers' counts."""
from __future__ import annotations

import os
import socket
from datetime import timedelta

import pytest
import requests

from tests.support import cli
from tests.support.factories import encode, inventory_event, now_iso, signed_headers
from tests.support.prometheus import (
    RULES,
    dashboard_expressions,
    exposed_names,
    metric_names_in,
    sample_value,
)
from tests.support.sandbox import TOKEN
from tests.support.settings import API_TOKEN, WEBHOOK_SECRET
from tests.support.waiting import wait_for
from erp_sync.workers.registry import WORKERS


@pytest.fixture
def fleet(migrated_database_url, broker, sandbox, tmp_path, committed_session):
    """The ingress (two processes), the API and every worker, each on its own port; yields role -> /metrics URL.

    After `committed_session`: what the workers wrote is emptied once they have stopped."""
    common = {"DATABASE_URL": migrated_database_url, "AMQP_URL": broker, "ERP_WEBHOOK_SECRET": WEBHOOK_SECRET,
              "ERP_BASE_URL": sandbox.url, "ERP_API_TOKEN": TOKEN, "STOREFRONT_API_TOKEN": API_TOKEN,
              "ERP_PROBE_INTERVAL_S": "0.5"}
    for directory in ("ingress", "api"):
        (tmp_path / directory).mkdir()
    commands = {"ingress": (["ingress", "--port"], {"INGRESS_WORKERS": "2",
                                                    "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "ingress")}),
                "api": (["api", "--port"], {"API_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "api")})}
    commands |= {name: (["worker", name], {}) for name in WORKERS}
    # A sweep first, so that the latest run's figures exist.
    swept = cli.run("reconcile", "--now", **common)
    assert swept.returncode in (0, 4), swept.stderr
    processes, urls = [], {}
    try:
        for role, (args, extra) in commands.items():
            # One at a time, each port picked just before its use: the others' connections take ports too.
            port = cli.free_port()
            arguments = [*args, str(port)] if args[-1] == "--port" else args
            process = cli.start(*arguments, **common, **extra, METRICS_PORT=str(port))
            processes.append(process)
            cli.wait_for_port(port, process, timeout=60)
            urls[role] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for process in processes:
            cli.stop(process)


def test_every_metric_the_rules_and_the_dashboard_read_is_served(fleet):
    # given the metric names the alert rules and the dashboard read, and a webhook accepted and one refused
    wanted = metric_names_in(RULES.read_text()) | metric_names_in("\n".join(dashboard_expressions()))
    body = encode(inventory_event())
    for secret, status in ((WEBHOOK_SECRET, 202), ("not-the-secret-0123456789", 401)):
        answer = requests.post(f"{fleet['ingress']}/webhooks/erp", data=body, headers=signed_headers(body, secret),
                               timeout=10)
        assert answer.status_code == status

    # when every process is scraped
    served = set().union(*(exposed_names(f"{url}/metrics", API_TOKEN if role == "api" else None)
                           for role, url in fleet.items()))

    # then each name is served by some process
    assert wanted - served == set()
    assert len(wanted) > 20


def test_each_worker_says_it_is_alive_once_its_consumers_are_connected(fleet):
    for name in WORKERS:
        wait_for(lambda name=name: requests.get(f"{fleet[name]}/healthz", timeout=10).status_code == 200,
                 timeout=30)
        assert requests.get(f"{fleet[name]}/healthz", timeout=10).json() == {"worker": name, "status": "ok"}
    assert sample_value(f"{fleet['orders']}/metrics", "erp_sync_consumer_connected",
                        queue="erp-sync.orders-push") == 1.0


def test_the_inventory_worker_counts_applied_duplicate_and_stale_figures(fleet):
    # given a figure, the same event again, and an older figure for the same SKU
    door = f"{fleet['ingress']}/webhooks/erp"
    first = inventory_event(sku="METRICS-1", new_quantity=5)
    older = inventory_event(sku="METRICS-1", new_quantity=9) | {"timestamp": now_iso(timedelta(hours=-1))}
    for event in (first, first, older):
        body = encode(event)
        assert requests.post(door, data=body, headers=signed_headers(body, WEBHOOK_SECRET), timeout=10).status_code == 202

    # when the inventory worker has applied them
    metrics = f"{fleet['inventory']}/metrics"

    def counted(outcome: str) -> float | None:
        return sample_value(metrics, "erp_sync_messages_total", queue="erp-sync.inventory", outcome=outcome)

    wait_for(lambda: counted("stale") == 1.0, timeout=30)

    # then its /metrics counts each by outcome, with their latencies
    assert (counted("applied"), counted("duplicate"), counted("stale")) == (1.0, 1.0, 1.0)
    assert sample_value(metrics, "erp_sync_message_handling_seconds_count", queue="erp-sync.inventory") == 3.0
    assert sample_value(metrics, "erp_sync_message_queue_to_commit_seconds_count", queue="erp-sync.inventory") == 3.0
    assert sample_value(metrics, "erp_sync_queue_messages", queue="erp-sync.inventory") == 0.0


def test_the_ingress_adds_up_the_counts_of_its_two_processes(migrated_database_url, broker, tmp_path):
    # given the ingress with two worker processes sharing one metrics directory
    port = cli.free_port()
    process = cli.start("ingress", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="2",
                        PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    try:
        cli.wait_for_port(port, process)
        # when 40 webhooks arrive, each on a connection of its own (the processes share them out)
        for _ in range(40):
            body = encode(inventory_event())
            answer = requests.post(f"http://127.0.0.1:{port}/webhooks/erp", data=body,
                                   headers=signed_headers(body, WEBHOOK_SECRET) | {"Connection": "close"}, timeout=10)
            assert answer.status_code == 202, answer.text
        scrapes = [sample_value(f"http://127.0.0.1:{port}/metrics", "erp_sync_webhooks_accepted_total",
                                event_type="inventory.change") for _ in range(6)]
        counting = {name.rsplit("_", 1)[1] for name in os.listdir(tmp_path) if name.startswith("counter_")}
    finally:
        cli.stop(process)

    # then both processes took some, and every scrape, whichever process answers it, shows all 40
    assert len(counting) == 2
    assert scrapes == [40.0] * 6


def test_a_worker_whose_metrics_port_is_taken_stops_at_start_naming_the_setting(migrated_database_url, broker):
    # given a port something else listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when a worker is told to serve its metrics there
        result = cli.run("worker", "inventory", DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                         METRICS_PORT=str(port))

    # then it stops with a configuration error that names METRICS_PORT
    assert result.returncode == 2
    assert result.stderr.startswith(f"erp-sync: configuration error: METRICS_PORT: cannot listen on 127.0.0.1:{port}")
