"""Where the test run finds PostgreSQL and RabbitMQ, and its own database and vhost on them.

`DATABASE_URL` and `AMQP_URL` name the servers (default: the local ones). Where nothing listens
there and a Docker engine exists, testcontainers starts them instead. Each run gets a database
and a vhost of its own, so runs never see each other's rows or messages.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import requests

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def docker_available() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "info"], capture_output=True, check=False
    ).returncode == 0


def with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + path, parts.query, ""))


def libpq_url(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def postgres_server() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    if reachable(url, 5432) or not docker_available():
        yield url
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:15", driver="psycopg") as container:
        yield container.get_connection_url()


@contextmanager
def rabbitmq_server() -> Iterator[tuple[str, str | None]]:
    """Yield the AMQP URL and, for a container, its management API URL."""
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    if reachable(url, 5672) or not docker_available():
        yield url, os.environ.get("RABBITMQ_MANAGEMENT_URL")
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13-management") as container:
        host = container.get_container_host_ip()
        amqp = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/%2F"
        yield amqp, f"http://{host}:{container.get_exposed_port(15672)}"


@contextmanager
def private_database(server_url: str) -> Iterator[str]:
    with database_not_yet_created(server_url) as url:
        with psycopg.connect(libpq_url(with_path(server_url, "postgres")), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{urlsplit(url).path[1:]}"')
        yield url


@contextmanager
def database_not_yet_created(server_url: str) -> Iterator[str]:
    """The URL of a database nobody uses yet on the server; dropped afterwards if anything created it."""
    name = f"erp_sync_test_{uuid.uuid4().hex[:10]}"
    try:
        yield with_path(server_url, name)
    finally:
        with psycopg.connect(libpq_url(with_path(server_url, "postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def private_vhost(server_url: str, management_url: str | None) -> Iterator[str]:
    name = f"erp-sync-test-{uuid.uuid4().hex[:10]}"
    user = urlsplit(server_url).username or "guest"
    _vhost_command(management_url, "add", name, user)
    try:
        yield with_path(server_url, quote(name, safe=""))
    finally:
        _vhost_command(management_url, "delete", name, user)


def _vhost_command(management_url: str | None, action: str, name: str, user: str) -> None:
    if management_url:
        api = f"{management_url}/api"
        auth = ("guest", "guest")
        if action == "add":
            requests.put(f"{api}/vhosts/{name}", auth=auth, timeout=10).raise_for_status()
            requests.put(
                f"{api}/permissions/{name}/{user}",
                json={"configure": ".*", "write": ".*", "read": ".*"},
                auth=auth,
                timeout=10,
            ).raise_for_status()
        else:
            requests.delete(f"{api}/vhosts/{name}", auth=auth, timeout=10)
        return
    if action == "add":
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    else:
        _rabbitmqctl("delete_vhost", name, check=False)


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=check, timeout=60)


def close_all_connections(vhost: str) -> None:
    """Make the broker drop every client connection of a vhost, as a broker restart would."""
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "vhost"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[1] == vhost:
            _rabbitmqctl("close_connection", fields[0], "test: connection dropped", check=False)
