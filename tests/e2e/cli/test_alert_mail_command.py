"""`erp-sync worker` with alert mail settings: a message it parks is mailed through a real SMTP server."""
from __future__ import annotations

from tests.support import cli
from tests.support.parking import publish_unreadable


def test_a_worker_process_mails_the_message_it_parks(broker, migrated_database_url, inbox):
    # given an inventory worker started as ops start it, with alert mail settings
    worker = cli.start("worker", "inventory", AMQP_URL=broker, DATABASE_URL=migrated_database_url,
                       ALERT_SMTP_HOST="127.0.0.1", ALERT_SMTP_PORT=str(inbox.port), ALERT_SMTP_TLS="none",
                       ALERT_EMAIL_TO="oncall@example.com, lead@example.com")
    try:
        # when it parks a message no worker can read
        publish_unreadable(broker, "evt-unreadable-cli")

        # then the on-call addresses get one mail naming it
        [mail] = inbox.wait_for_mails(1, timeout=60)
    finally:
        output = cli.stop(worker)
    assert mail["To"] == "oncall@example.com, lead@example.com"
    assert mail["Subject"].startswith("[erp-sync] message_parked: parking message evt-unreadable-cli")
    assert "ALERT parking message evt-unreadable-cli" in output
    assert "alert message_parked mailed to oncall@example.com, lead@example.com" in output
