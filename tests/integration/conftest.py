"""Fixtures of the integration tier: the run's own PostgreSQL database and RabbitMQ vhost, settings on them, an SMTP server."""
from __future__ import annotations

import pytest
from sqlalchemy import delete

from erp_sync.shared.alert_mail import install_alert_mail
from erp_sync.shared.alerts import install_sender
from erp_sync.shared.models import AlertThrottle
from tests.support.db_fixtures import committed_session, db_engine, db_session, migrated_database_url  # noqa: F401
from tests.support.service_fixtures import *  # noqa: F403 (the service fixtures)
from tests.support.smtp import smtp_server


@pytest.fixture
def inbox():
    with smtp_server() as received:
        yield received


@pytest.fixture
def alert_mail(settings_factory, inbox, db_engine):
    """Install this process's alert mail, to the inbox, with a throttle of `period_s`; a clean throttle table."""
    installed = []

    def install(period_s: float = 600.0, **overrides: object):
        with db_engine.begin() as connection:
            connection.execute(delete(AlertThrottle))
        settings = settings_factory(**{
            "alert_smtp_host": "127.0.0.1", "alert_smtp_port": inbox.port, "alert_smtp_tls": "none",
            "alert_email_to": "oncall@example.com", "alert_email_from": "erp-sync@example.com",
            "alert_throttle_s": period_s} | overrides)
        sender = install_alert_mail(settings)
        installed.append(sender)
        return settings, sender

    yield install
    for sender in installed:
        sender.close()
    install_sender(None)
