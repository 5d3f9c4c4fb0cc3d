"""Fixtures of the sandbox ERP's integration tests: its app, the app served on loopback, an ingress stub."""
from __future__ import annotations

import pytest

from tests.support.ingress_stub import IngressStub
from tests.support.sandbox import serving
from tests.support.sandbox_fixtures import app, catalog_file, client, live, make_app  # noqa: F401


@pytest.fixture
def stub():
    """A stand-in for erp-sync's ingress on loopback, keeping what the sandbox delivers to it."""
    stub = IngressStub()
    with serving(stub.app()) as url:
        stub.url = f"{url}/webhooks/erp"
        yield stub
