"""Fixtures of the command line's end-to-end tests: a sandbox ERP holding given stock, an SMTP server."""
from __future__ import annotations

import pytest
from sqlalchemy import delete

from erp_sync.shared.models import AlertThrottle
from tests.support.reconcile import erp  # noqa: F401
from tests.support.smtp import smtp_server


@pytest.fixture
def inbox(db_engine):
    """A real SMTP server, and an empty alert throttle (an earlier test's mail must not hold this one's back)."""
    with db_engine.begin() as connection:
        connection.execute(delete(AlertThrottle))
    with smtp_server() as received:
        yield received
