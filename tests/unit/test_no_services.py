"""The unit tier's guard: a unit test that reaches PostgreSQL, RabbitMQ or a process is stopped and failed."""
from __future__ import annotations

import socket
import subprocess
import sys

import pika
import pika.exceptions
import psycopg
import pytest
from sqlalchemy import create_engine, text

from erp_sync.shared.errors import BrokerUnavailable
from erp_sync.shared.publisher import ConfirmingPublisher, OutgoingMessage
from tests.support.no_services import ServiceReached


def noted(no_services: list[str]) -> list[str]:
    """What the guard noted, cleared so that this test, which meant to reach it, passes."""
    attempts = list(no_services)
    no_services.clear()
    return attempts


@pytest.mark.parametrize("port", [5432, 5672, 15672])
def test_a_socket_to_a_service_port_is_refused(no_services, port):
    with pytest.raises(ServiceReached, match=str(port)):
        socket.create_connection(("127.0.0.1", port), timeout=1)

    assert len(noted(no_services)) == 1


def test_a_socket_beyond_loopback_is_refused(no_services):
    with pytest.raises(ServiceReached, match="beyond loopback"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)

    assert len(noted(no_services)) == 1


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@localhost/postgres"])
def test_postgresql_is_refused_though_libpq_opens_its_own_sockets(no_services, url):
    with pytest.raises(ServiceReached):
        psycopg.connect(url, connect_timeout=1)

    assert "PostgreSQL" in noted(no_services)[0]


def test_postgresql_through_sqlalchemy_is_refused(no_services):
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

    with pytest.raises(ServiceReached), engine.connect() as connection:
        connection.execute(text("SELECT 1"))

    assert "PostgreSQL" in noted(no_services)[0]


def test_rabbitmq_is_refused_even_where_the_client_swallows_the_error(no_services):
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F?connection_attempts=1"))

    assert "RabbitMQ" in noted(no_services)[0]


def test_the_publisher_cannot_reach_rabbitmq(no_services):
    publisher = ConfirmingPublisher("amqp://guest:guest@127.0.0.1:5672/%2F", connect_timeout_s=1)

    with pytest.raises(BrokerUnavailable):
        publisher.publish(OutgoingMessage("erp-sync.events", "inventory.change", b"{}", message_id="evt_1"))

    assert "RabbitMQ" in noted(no_services)[0]


def test_a_process_is_refused(no_services):
    with pytest.raises(ServiceReached, match="process"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)

    assert len(noted(no_services)) == 1


def test_the_services_fixtures_are_out_of_reach(request):
    for name in ("database_url", "amqp_url", "migrated_database_url", "broker", "settings", "committed_session"):
        with pytest.raises(pytest.FixtureLookupError):
            request.getfixturevalue(name)
