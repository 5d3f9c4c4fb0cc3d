"""`erp-sync dlq`: an operator lists the parked messages, replays one, and an event already applied changes nothing."""
from __future__ import annotations

import json

import pika
import pytest

from erp_sync.cli import main
from erp_sync.shared import dead_letters
from erp_sync.shared.broker import queue_depths
from erp_sync.shared.dead_letters import DeadLetters
from erp_sync.shared.retry_policy import ATTEMPT_HEADER, PARK_REASON_HEADER
from erp_sync.shared.topology import PARKING_EXCHANGE, QueueBound
from tests.support import cli
from tests.support.bulk import bounded_vhost
from tests.support.parking import park
from tests.support.factories import encode, inventory_event
from tests.support.waiting import wait_for
from tests.support.webhooks import post


def park_copy(amqp_url: str, body: bytes, event_id: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        properties = pika.BasicProperties(message_id=event_id, content_type="application/json", delivery_mode=2,
                                          headers={PARK_REASON_HEADER: "DatabaseUnavailable: gave up", ATTEMPT_HEADER: 25})
        connection.channel().basic_publish(PARKING_EXCHANGE, "inventory", body, properties)
    finally:
        connection.close()


def test_replaying_an_event_already_applied_changes_nothing(ingress, start_workers, broker, migrated_database_url):
    # given a stock figure applied, then (as after an outage) a copy of it parked, and a later sale applied
    start_workers("inventory")
    event = inventory_event(sku="SKU-DLQ", new_quantity=10)
    post(ingress, event)
    post(ingress, inventory_event(sku="SKU-DLQ", new_quantity=None, quantity_change=-1))
    wait_for(lambda: ingress.get("/api/v1/inventory/SKU-DLQ").get_json().get("erp_quantity") == 9)
    park_copy(broker, encode(event), event["event_id"])
    env = {"AMQP_URL": broker, "DATABASE_URL": migrated_database_url}

    # when the operator lists the parked messages and replays that one
    listed = cli.run("dlq", "list", "--json", **env)
    replayed = cli.run("dlq", "replay", event["event_id"], **env)

    # then the listing named it with its reason and attempts, and the replay took it off the parking queue
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {"queue": "inventory", "id": event["event_id"], "reason": "DatabaseUnavailable: gave up", "attempts": 25,
         "parked_at": None}]
    assert replayed.returncode == 0 and f"replayed inventory\t{event['event_id']}" in replayed.stdout
    assert cli.run("dlq", "list", **env).stdout == ""
    # and the worker took it for the duplicate it is: the sale after it still counts
    history = wait_for(lambda: (h := ingress.get("/api/v1/inventory/SKU-DLQ/history").get_json()["changes"])
                       and h[0]["outcome"] == "duplicate" and h)
    assert history[0]["event_id"] == event["event_id"]
    assert ingress.get("/api/v1/inventory/SKU-DLQ").get_json()["erp_quantity"] == 9


def test_replaying_an_id_not_parked_says_so_and_fails(broker):
    result = cli.run("dlq", "replay", "evt_nowhere", AMQP_URL=broker)

    assert result.returncode == 1
    assert "no parked message evt_nowhere" in result.stderr


@pytest.mark.parametrize("arguments, line", [
    (["list"], "erp-sync: nothing parked: nothing listed"),
    (["list", "--json"], "erp-sync: nothing parked: nothing listed"),
    (["list", "inventory"], "erp-sync: nothing parked from inventory: nothing listed"),
    (["replay", "--all"], "erp-sync: nothing parked: nothing replayed"),
    (["replay", "--all", "--queue", "orders"], "erp-sync: nothing parked from orders: nothing replayed"),
])
def test_with_nothing_parked_a_list_or_replay_says_so_on_stderr_only(broker, arguments, line):
    # given no parked message on any queue
    # when the operator lists or replays them
    result = cli.run("dlq", *arguments, AMQP_URL=broker)

    # then one line says nothing is parked, and stdout stays empty: no JSON line, no message line
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [line]


def test_a_replay_its_work_queue_refuses_part_way_names_what_went_back_and_why_the_rest_stayed():
    with bounded_vhost(QueueBound(max_length=2, max_bytes=1024 * 1024)) as url:
        # given four messages parked on the inventory queue, whose work queue takes two more
        for n in range(4):
            park(url, "inventory", f"evt_full_{n}")

        # when the operator replays them all
        result = cli.run("dlq", "replay", "--all", "--queue", "inventory", AMQP_URL=url)

        # then each replayed one has its line, the refusal says the queue is full, and the rest stay parked
        went_back = [line.split("\t")[1] for line in result.stdout.splitlines()]
        assert result.returncode == 1, result.stderr
        assert went_back and all(line.startswith("replayed inventory\t") for line in result.stdout.splitlines())
        assert "erp-sync.inventory is at its bound" in result.stderr and "stay parked" in result.stderr
        still_parked = [m.message_id for m in DeadLetters(url).parked("inventory")]
        assert sorted(went_back + still_parked) == [f"evt_full_{n}" for n in range(4)]
        assert queue_depths(url, ["erp-sync.inventory"])["erp-sync.inventory"] == len(went_back)


@pytest.mark.parametrize("action", ["replay", "purge"])
def test_a_replay_or_purge_cut_short_still_says_what_it_did(broker, monkeypatch, capsys, action):
    # given four parked messages, and Ctrl-C arriving as the third is read
    for n in range(4):
        park_copy(broker, encode(inventory_event(sku=f"SKU-C{n}")), f"evt_cut_{n}")
    taken: list[str] = []
    real_parked_from = dead_letters.parked_from

    def read_until_ctrl_c(worker, properties, body):
        if len(taken) == 2:
            raise KeyboardInterrupt
        taken.append(worker)
        return real_parked_from(worker, properties, body)

    monkeypatch.setenv("AMQP_URL", broker)
    monkeypatch.setenv("ERP_SYNC_ENV_FILE", "")
    ids = [f"evt_cut_{n}" for n in range(4)]

    # when the operator replays or drops them
    with monkeypatch.context() as interrupted:
        interrupted.setattr(dead_letters, "parked_from", read_until_ctrl_c)
        exit_code = main(["dlq", "replay", "--all", "--queue", "inventory"] if action == "replay"
                         else ["dlq", "purge", *ids, "--yes"])

    # then it ends as interrupted, having said which two it had settled, and those alone left the parking queue
    said = capsys.readouterr()
    done = "replayed" if action == "replay" else "purged"
    assert exit_code == 130 and said.err.strip().endswith("erp-sync: interrupted")
    assert said.out == f"{done} inventory\tevt_cut_0\n{done} inventory\tevt_cut_1\n"
    assert sorted(m.message_id for m in DeadLetters(broker).parked("inventory")) == ["evt_cut_2", "evt_cut_3"]
    assert queue_depths(broker, ["erp-sync.inventory"])["erp-sync.inventory"] == (2 if action == "replay" else 0)


def test_purge_asks_for_yes(broker):
    result = cli.run("dlq", "purge", "--all", AMQP_URL=broker)

    assert result.returncode == 2
    assert "--yes" in result.stderr


def test_purge_without_ids_drops_nothing_unless_told_all(broker):
    # given a parked message, and a purge whose id list came out empty (`dlq purge $ID --yes`, ID unset)
    park_copy(broker, encode(inventory_event(sku="SKU-K")), "evt_kept")
    result = cli.run("dlq", "purge", "--yes", AMQP_URL=broker)

    # then it is refused as an argument error, and the message stays parked
    assert result.returncode == 2 and "--all" in result.stderr
    assert [m.message_id for m in DeadLetters(broker).parked("inventory")] == ["evt_kept"]


def test_purging_one_id_drops_that_message_alone(broker):
    # given three messages parked on the inventory queue
    bodies = {f"evt_purge_{n}": encode(inventory_event(sku=f"SKU-P{n}")) for n in range(3)}
    for event_id, body in bodies.items():
        park_copy(broker, body, event_id)

    # when the operator drops one for good, and names one that is not parked
    purged = cli.run("dlq", "purge", "evt_purge_1", "evt_nowhere", "--yes", AMQP_URL=broker)

    # then that one is gone, the others stay parked, and the unknown id is named (exit 1)
    assert purged.returncode == 1, purged.stderr
    assert purged.stdout == "purged inventory\tevt_purge_1\n"
    assert "no parked message evt_nowhere" in purged.stderr
    listed = cli.run("dlq", "list", "--json", AMQP_URL=broker)
    assert sorted(json.loads(line)["id"] for line in listed.stdout.splitlines()) == ["evt_purge_0", "evt_purge_2"]


def test_tls_to_a_port_without_it_says_the_broker_is_unreachable_in_one_line(broker):
    # given AMQP_URL asking for TLS from RabbitMQ's plain port
    result = cli.run("dlq", "list", AMQP_URL=broker.replace("amqp://", "amqps://", 1))

    # then the command fails as for any broker it cannot reach: one line, no traceback
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith("erp-sync: cannot connect to RabbitMQ: SSLError")


def test_a_dlq_command_waits_while_another_reads_then_finds_the_message(broker):
    # given a parked message, held by another reader (the console, or a colleague's listing)
    park_copy(broker, encode(inventory_event(sku="SKU-W")), "evt_wait")
    waiting = "another `erp-sync dlq` command or the console is reading the parked messages; waiting"
    with DeadLetters(broker).reading() as other_reader:
        next(other_reader)
        shown = cli.start("dlq", "show", "evt_wait", AMQP_URL=broker)
        # (however long the command takes to start on a busy machine)
        wait_for(lambda: waiting in cli.output_of(shown) or shown.poll() is not None, timeout=60)
        still_waiting = shown.poll() is None

    # then the command waited for its turn, said why, and showed the message rather than "not parked"
    shown.wait(timeout=60)
    output = cli.output_of(shown)
    assert still_waiting and shown.returncode == 0, output
    assert waiting in output
    assert json.loads(output[output.index("{"):])["id"] == "evt_wait"


def test_show_looks_on_the_queue_named_only(broker):
    # given an event parked on the inventory queue
    park_copy(broker, encode(inventory_event(sku="SKU-Q")), "evt_queue")

    # when the operator looks for it on the catalog queue, then on its own
    elsewhere = cli.run("dlq", "show", "evt_queue", "--queue", "catalog", AMQP_URL=broker)
    there = cli.run("dlq", "show", "evt_queue", "--queue", "erp-sync.inventory.parked", AMQP_URL=broker)

    # then it is not on the catalog's, and shown from its own
    assert (elsewhere.returncode, elsewhere.stderr) == (1, "erp-sync: no parked message evt_queue\n")
    assert there.returncode == 0 and json.loads(there.stdout)["queue"] == "inventory"
