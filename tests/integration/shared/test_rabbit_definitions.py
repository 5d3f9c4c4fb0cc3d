"""`erp-sync migrate --definitions` prints exactly what `erp-sync migrate` declares on a real broker."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import pytest

from tests.support import cli, services
from tests.support.broker_definitions import comparable, exported, load
from tests.support.waiting import wait_for


@pytest.fixture
def fresh_vhost_url(amqp_url: str) -> Iterator[str]:
    # A vhost of this test alone: the run's vhost also holds what other tests declared.
    server = services.with_path(amqp_url, "%2F")
    with services.private_vhost(server, os.environ.get("RABBITMQ_MANAGEMENT_URL")) as url:
        yield url


def test_the_definitions_are_what_migrate_declares(fresh_vhost_url, migrated_database_url):
    # given settings that differ from the defaults where the topology depends on them
    env = {"AMQP_URL": fresh_vhost_url, "DATABASE_URL": migrated_database_url,
           "RETRY_DELAYS_MS": "1000,7000", "ORDER_RETRY_INTERVAL_S": "120", "QUEUE_MAX_LENGTH": "5000"}
    vhost = unquote(urlsplit(fresh_vhost_url).path.lstrip("/"))

    # when migrate declares the topology, and prints it as definitions
    migrated = cli.run("migrate", **env)
    printed = cli.run("migrate", "--definitions", **env)

    # then the broker's own export of the vhost is what was printed, field for field
    assert migrated.returncode == 0, migrated.stderr
    assert printed.returncode == 0, printed.stderr
    on_broker = comparable(exported(vhost), vhost)
    assert len(on_broker["queues"]) > 10
    assert on_broker == comparable(json.loads(printed.stdout), vhost)


def test_a_broker_loaded_with_the_definitions_is_one_migrate_finds_complete(fresh_vhost_url, migrated_database_url):
    # given a vhost an operator loaded from the definitions before any erp-sync process ran
    env = {"AMQP_URL": fresh_vhost_url, "DATABASE_URL": migrated_database_url}
    vhost = unquote(urlsplit(fresh_vhost_url).path.lstrip("/"))
    printed = cli.run("migrate", "--definitions", **env)
    assert printed.returncode == 0, printed.stderr
    definitions = json.loads(printed.stdout)
    load(definitions, vhost)
    expected = comparable(definitions, vhost)
    loaded = wait_for(lambda: (held := comparable(exported(vhost), vhost)) == expected and held, timeout=60, interval=1)

    # when migrate runs against it
    migrated = cli.run("migrate", **env)

    # then the broker took every queue with its arguments, and migrate found nothing to add or dispute
    assert migrated.returncode == 0, migrated.stderr
    assert comparable(exported(vhost), vhost) == loaded
