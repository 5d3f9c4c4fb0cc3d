"""Fixtures of the workers' integration tests: an image server, a sandbox ERP holding given stock, sweep settings."""
from __future__ import annotations

import pytest

from tests.support.image_server import image_server  # noqa: F401
from tests.support.reconcile import TOKEN, erp  # noqa: F401


@pytest.fixture
def sweep_settings(settings_factory):
    def build(url: str, **overrides: object):
        return settings_factory(**{"erp_base_url": url, "erp_api_token": TOKEN} | overrides)

    return build
