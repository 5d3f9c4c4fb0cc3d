from __future__ import annotations

import pytest

from erp_sync.ingress import create_app


@pytest.fixture
def app(settings, broker):
    app = create_app(settings)
    yield app
    app.extensions["erp_sync.publisher"].close()


@pytest.fixture
def client(app):
    return app.test_client()
