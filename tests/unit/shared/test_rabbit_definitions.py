"""deploy/rabbitmq/definitions.json is what `erp-sync migrate` declares, written by `make definitions`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from erp_sync.cli.migrate import definitions, run_migrate
from erp_sync.shared.settings import Settings
from erp_sync.shared.topology import WORK_QUEUES

REPO = Path(__file__).resolve().parents[3]
COMMITTED = REPO / "deploy" / "rabbitmq" / "definitions.json"


def test_the_committed_definitions_are_those_of_the_default_settings():
    # model_construct: the defaults alone, whatever this shell's environment says
    generated = definitions(Settings.model_construct())

    assert json.loads(COMMITTED.read_text()) == generated, "run `make definitions` and commit the file"


def test_every_work_queue_is_bounded_quorum_and_parks_on_the_parking_exchange():
    queues = {q["name"]: q for q in json.loads(COMMITTED.read_text())["queues"]}

    for work in WORK_QUEUES.values():
        arguments = queues[work.name]["arguments"]
        assert queues[work.name]["type"] == "quorum" and queues[work.name]["durable"]
        assert arguments["x-overflow"] == "reject-publish" and arguments["x-max-length"] > 0
        assert arguments["x-dead-letter-exchange"] == "erp-sync.parking"
        assert work.parking_queue in queues


@pytest.mark.parametrize(("amqp_url", "vhost"), [
    ("amqp://guest:guest@rabbit:5672/%2F", "/"),
    ("amqp://guest:guest@rabbit:5672", "/"),
    ("amqps://erp:pw@rabbit:5671/erp-sync", "erp-sync"),
])
def test_the_definitions_name_the_vhost_of_amqp_url(amqp_url, vhost, capsys):
    run_migrate(Settings.model_construct(amqp_url=amqp_url), argparse.Namespace(definitions=True))

    printed = json.loads(capsys.readouterr().out)
    assert {item["vhost"] for kind in ("exchanges", "queues", "bindings") for item in printed[kind]} == {vhost}


def test_a_different_order_retry_interval_gets_its_own_delay_queue():
    names = {q["name"] for q in definitions(Settings.model_construct(order_retry_interval_s=60))["queues"]}

    assert "erp-sync.orders-push.delay.60000ms" in names
