"""erp-sync's HTTP edges in tests: an API client carrying its token, both edges as one, an app closed after use."""
from __future__ import annotations

from collections.abc import Iterator

from flask import Flask
from flask.testing import FlaskClient

from erp_sync.ingress import extensions
from tests.support.settings import API_TOKEN


def api_client(app: Flask, token: str = API_TOKEN) -> FlaskClient:
    """A test client of the storefront API app that sends `Authorization: Bearer <token>` on every request."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


class Edges:
    """erp-sync as the outside meets it: the ERP posts to its door, the storefront reads the API."""

    def __init__(self, door: FlaskClient, api: FlaskClient) -> None:
        self.door = door
        self.api = api

    def post(self, *args, **kwargs):
        return self.door.post(*args, **kwargs)

    def get(self, *args, **kwargs):
        return self.api.get(*args, **kwargs)


def closed_after(app: Flask) -> Iterator[Flask]:
    """Yield the app, then close what it holds (for a fixture: `yield from closed_after(app)`)."""
    yield app
    extensions.close(app)
