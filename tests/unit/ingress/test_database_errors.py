"""The API's answer when the database fails it: down, or every pooled connection in use."""
from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from erp_sync.ingress import errors
from erp_sync.shared.settings import Settings


@pytest.fixture
def client():
    app = Flask("erp_sync.ingress")
    app.extensions["erp_sync.settings"] = Settings.model_construct(unavailable_retry_after_s=30)
    errors.init_app(app)

    @app.get("/pool-exhausted")
    def pool_exhausted():
        raise PoolTimeoutError("QueuePool limit of size 15 overflow 0 reached, connection timed out, timeout 10.00")

    @app.get("/database-down")
    def database_down():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    return app.test_client()


def test_every_pooled_connection_in_use_is_busy_not_the_database_down(client):
    answer = client.get("/pool-exhausted")

    # then the storefront is told to come back shortly, and not that PostgreSQL is down (it may be idle)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.get_json()["error"] == "the API is busy: no database connection is free; retry shortly"


def test_a_database_down_is_told_as_such(client):
    answer = client.get("/database-down")

    assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
    assert answer.get_json()["error"] == "the commerce database is unavailable; retry later"
