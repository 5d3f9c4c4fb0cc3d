from __future__ import annotations

import pytest

from erp_sync.ingress import create_app
from erp_sync.ingress.storefront import create_api_app
from tests.support.storefront import api_client, closed_after


@pytest.fixture
def app(settings, broker):
    """The ERP's door."""
    yield from closed_after(create_app(settings))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_app(settings, broker):
    """The storefront's API."""
    yield from closed_after(create_api_app(settings))


@pytest.fixture
def api(api_app):
    """A client of the storefront API with a valid token."""
    return api_client(api_app)
