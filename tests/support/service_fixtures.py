"""Fixtures on the services: the run's PostgreSQL database and RabbitMQ vhost, and settings naming them."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import pytest

from erp_sync.shared.broker import declare_all
from erp_sync.shared.settings import Settings, load_settings
from tests.support import services
from tests.support.amqp import purge_all
from tests.support.settings import API_TOKEN, OLD_API_TOKEN, OLD_WEBHOOK_SECRET, TEST_RETRY_DELAYS_MS, WEBHOOK_SECRET


# What a service tier's conftest takes with `from tests.support.service_fixtures import *`.
__all__ = ["amqp_url", "amqp_vhost", "broker", "database_url", "settings", "settings_factory", "topology"]

def unavailable(what: str) -> None:
    # A laptop without the services skips; CI must never pass by skipping.
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable and CI requires it", pytrace=False)
    pytest.skip(f"{what} is not reachable")


_OPENED = pytest.StashKey[dict[str, str]]()


def _once_per_run(request: pytest.FixtureRequest, name: str, resource: Callable[[], AbstractContextManager[str]]) -> str:
    # The integration and e2e conftests each offer these session fixtures, so pytest would make
    # them once per tier: the run keeps the first one open instead, and closes it at its end.
    opened = request.config.stash.setdefault(_OPENED, {})
    if name not in opened:
        stack = ExitStack()
        opened[name] = stack.enter_context(resource())
        request.config.add_cleanup(stack.close)
    return opened[name]


@contextmanager
def _private_database() -> Iterator[str]:
    with services.postgres_server() as server:
        if not services.reachable(server, 5432):
            unavailable("PostgreSQL")
        with services.private_database(server) as url:
            yield url


@contextmanager
def _private_vhost() -> Iterator[str]:
    with services.rabbitmq_server() as (server, management):
        if not services.reachable(server, 5672):
            unavailable("RabbitMQ")
        with services.private_vhost(server, management) as url:
            yield url


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty PostgreSQL database of this test run's own."""
    return _once_per_run(request, "database", _private_database)


@pytest.fixture(scope="session")
def amqp_url(request: pytest.FixtureRequest) -> str:
    """A RabbitMQ vhost of this test run's own."""
    return _once_per_run(request, "vhost", _private_vhost)


@pytest.fixture(scope="session")
def amqp_vhost(amqp_url: str) -> str:
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(amqp_url).path.lstrip("/"))


@pytest.fixture(scope="session")
def topology(amqp_url: str) -> str:
    declare_all(amqp_url, TEST_RETRY_DELAYS_MS)
    return amqp_url


@pytest.fixture
def broker(topology: str) -> str:
    """The run's vhost with the topology declared and every queue empty."""
    purge_all(topology, TEST_RETRY_DELAYS_MS)
    return topology


@pytest.fixture
def settings_factory(migrated_database_url: str, amqp_url: str):
    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "database_url": migrated_database_url,
            "amqp_url": amqp_url,
            "erp_webhook_secret": f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
            "storefront_api_token": f"{API_TOKEN},{OLD_API_TOKEN}",
            "publish_confirm_timeout_s": 5.0,
            "retry_delays_ms": TEST_RETRY_DELAYS_MS,
            "max_delivery_attempts": 5,
        }
        values.update(overrides)
        return load_settings(**values)

    return build


@pytest.fixture
def settings(settings_factory) -> Settings:
    return settings_factory()
