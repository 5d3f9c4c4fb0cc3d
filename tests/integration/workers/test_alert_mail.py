"""Alerts by mail through a real SMTP server (aiosmtpd), the throttle in the run's PostgreSQL.

A worker that parks a message mails the on-call address once; repeats within the throttle period
are mailed once more, as a count, when the period ends; every cause mails; the processes share
one throttle; a mail server that is down never reaches the worker.
"""
from __future__ import annotations

import logging
import threading
import uuid

import pytest
import trustme
from sqlalchemy import delete

from erp_sync.shared.alert_mail import MailingSender, SmtpConfig
from erp_sync.shared.alert_throttle import PgThrottle
from erp_sync.shared.alerts import Alert, Cause, alert
from erp_sync.shared.models import AlertThrottle
from erp_sync.shared.topology import WORK_QUEUES
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from erp_sync.workers.runner import run_worker
from tests.support.amqp import drain
from tests.support.cli import free_port
from tests.support.parking import publish_unreadable
from tests.support.smtp import Login, smtp_server
from tests.support.waiting import wait_for


@pytest.fixture
def inventory_worker(broker):
    """Start the real inventory worker in a thread of this process (so it raises alerts through our sender)."""
    stop = threading.Event()
    threads = []

    def start(settings):
        worker = WORKERS["inventory"]
        assert isinstance(worker, ConsumingWorker)
        thread = threading.Thread(target=run_worker, args=(worker, settings, stop), name="test-inventory")
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=30)


def unreadable(amqp_url: str) -> str:
    message_id = f"evt-garbage-{uuid.uuid4().hex[:8]}"
    publish_unreadable(amqp_url, message_id)
    return message_id


def parked_ids(amqp_url: str, seen: list[str], count: int) -> list[str]:
    queue = WORK_QUEUES["inventory"].parking_queue
    wait_for(lambda: seen.extend(m.properties.message_id for m in drain(amqp_url, queue)) or len(seen) >= count)
    return seen


def test_a_parked_message_mails_the_on_call_address_once(alert_mail, inventory_worker, inbox, amqp_url):
    # given a worker with alert mail configured
    settings, sender = alert_mail(period_s=600)
    inventory_worker(settings)

    # when it parks a message
    message_id = unreadable(amqp_url)
    parked_ids(amqp_url, [], 1)
    sender.close()

    # then exactly one mail went to the on-call address, naming the cause and the message
    [mail] = inbox.messages
    assert mail["To"] == "oncall@example.com" and mail["From"] == "erp-sync@example.com"
    assert mail["Subject"].startswith(f"[erp-sync] message_parked: parking message {message_id}")
    assert message_id in mail.get_content()


def test_two_parks_within_the_period_mail_once_then_once_with_the_count(alert_mail, inventory_worker, inbox, amqp_url):
    # given a throttle period of two seconds
    settings, _ = alert_mail(period_s=2)
    inventory_worker(settings)

    # when two messages are parked within it
    first, second = unreadable(amqp_url), unreadable(amqp_url)
    parked_ids(amqp_url, [], 2)

    # then the first park mails at once, and the period's end mails the one held back as a count
    mails = inbox.wait_for_mails(2)
    assert first in mails[0]["Subject"]
    assert mails[1]["Subject"].startswith("[erp-sync] message_parked: 1 more since ")
    assert second in mails[1].get_content()
    assert len(inbox.messages) == 2


@pytest.mark.parametrize("cause", list(Cause))
def test_each_cause_mails(alert_mail, inbox, cause):
    _, sender = alert_mail()

    alert(cause, "what happened: %s", cause.value)
    sender.close()

    assert inbox.subjects() == [f"[erp-sync] {cause}: what happened: {cause}"]


def test_processes_share_one_throttle(alert_mail, inbox):
    # given two processes' senders on the same database (the first as installed)
    settings, first = alert_mail(period_s=600)
    second = MailingSender(SmtpConfig.from_settings(settings), PgThrottle(settings.database_url, 600))

    # when each raises the same cause
    alert(Cause.ORDER_REJECTED, "order ORD-1 rejected")
    wait_for(lambda: inbox.messages)
    second.send(alert(Cause.ORDER_REJECTED, "order ORD-2 rejected"))
    first.close()
    second.close()

    # then one mail went out
    assert inbox.subjects() == ["[erp-sync] order_rejected: order ORD-1 rejected"]


def test_a_mail_server_that_is_down_never_reaches_the_worker(alert_mail, caplog):
    # given alert mail to a port where nothing listens
    _, sender = alert_mail(alert_smtp_port=free_port())

    # when an alert is raised
    with caplog.at_level(logging.INFO):
        raised = alert(Cause.SWEEP_HELD, "run 7 held")
        sender.close()

    # then the caller went on, and the alert and the mail it could not send are both logged
    assert raised.text == "run 7 held"
    messages = [r.getMessage() for r in caplog.records]
    assert "ALERT run 7 held" in messages
    assert any(m.startswith("alert mail for sweep_held failed (") and m.endswith("trying again in 30 s")
               for m in messages)
    assert "alert mail for sweep_held not delivered before the process stopped; the alert stays logged" in messages


def test_a_mail_the_server_did_not_take_is_sent_once_it_is_back(settings_factory, db_engine):
    with db_engine.begin() as connection:
        connection.execute(delete(AlertThrottle))
    # given alert mail to a mail server that is down, trying again after a moment
    port = free_port()
    settings = settings_factory(alert_smtp_host="127.0.0.1", alert_smtp_port=port, alert_smtp_tls="none",
                                alert_email_to="oncall@example.com")
    sender = MailingSender(SmtpConfig.from_settings(settings), PgThrottle(settings.database_url, 600),
                           retry_delays_s=(0.5, 0.5, 0.5, 0.5))

    # when the period's first alert is raised, and the mail server comes back
    sender.send(Alert(Cause.MESSAGE_PARKED, "parking message m-1"))
    with smtp_server(port=port) as inbox:
        # then that first page arrives: the throttle had counted it as mailed, and lost it before
        wait_for(lambda: inbox.messages, timeout=10)
        sender.close()
    assert inbox.subjects() == ["[erp-sync] message_parked: parking message m-1"]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # aiosmtpd, on implicit TLS
def test_alert_mail_over_tls_with_a_login(settings_factory, db_engine, tls, tmp_path, monkeypatch):
    with db_engine.begin() as connection:
        connection.execute(delete(AlertThrottle))
    # given a mail server with a certificate from a CA the system trusts, that requires a login
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # read by ssl.create_default_context
    login = Login("alerts", "smtp-password-1")
    with smtp_server(tls, authority.issue_cert("127.0.0.1"), login) as inbox:
        settings = settings_factory(alert_smtp_host="127.0.0.1", alert_smtp_port=inbox.port, alert_smtp_tls=tls,
                                    alert_smtp_user="alerts", alert_smtp_password="smtp-password-1",
                                    alert_email_to="oncall@example.com")
        config = SmtpConfig.from_settings(settings)

        # when an alert is mailed
        sender = MailingSender(config, PgThrottle(settings.database_url, 600))
        sender.send(Alert(Cause.ERP_UNREACHABLE, f"the ERP is down ({tls})"))
        sender.close()

        # then it arrived over TLS, after the login
        assert inbox.subjects() == [f"[erp-sync] erp_unreachable: the ERP is down ({tls})"]
        assert login.logged_in == ["alerts"]


def test_without_the_throttles_database_alerts_are_mailed_unthrottled(settings_factory, inbox):
    # given a sender whose throttle's database does not answer
    settings = settings_factory(alert_smtp_host="127.0.0.1", alert_smtp_port=inbox.port, alert_smtp_tls="none",
                                alert_email_to="oncall@example.com")
    sender = MailingSender(SmtpConfig.from_settings(settings), PgThrottle("postgresql+psycopg://x@127.0.0.1:1/none", 600))

    # when the same cause comes twice
    sender.send(Alert(Cause.MESSAGE_PARKED, "parking message m-1"))
    sender.send(Alert(Cause.MESSAGE_PARKED, "parking message m-2"))
    sender.close()

    # then both are mailed rather than lost
    assert inbox.subjects() == ["[erp-sync] message_parked: parking message m-1",
                                "[erp-sync] message_parked: parking message m-2"]
