from __future__ import annotations

import pytest

from ingress import create_app
from shared.broker import declare_all
from tests.amqp_helpers import purge_all


@pytest.fixture(scope="session")
def topology(amqp_url: str) -> str:
    declare_all(amqp_url, (200, 400))
    return amqp_url


@pytest.fixture
def broker(topology: str) -> str:
    """The run's vhost with the topology declared and every queue empty."""
    purge_all(topology)
    return topology


@pytest.fixture
def app(settings, broker):
    app = create_app(settings)
    yield app
    app.extensions["erp_sync.publisher"].close()


@pytest.fixture
def client(app):
    return app.test_client()
