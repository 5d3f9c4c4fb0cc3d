"""An alert is logged as `ALERT <text>` with its cause, and handed to the installed sender."""
from __future__ import annotations

import logging

from erp_sync.shared.alert_mail import SmtpConfig, compose
from erp_sync.shared.alert_throttle import Verdict
from erp_sync.shared.alerts import Alert, Cause, alert, install_sender


class Collecting:
    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def send(self, raised: Alert) -> None:
        self.sent.append(raised)


def test_an_alert_is_logged_and_sent(caplog):
    sender = Collecting()
    previous = install_sender(sender)
    try:
        with caplog.at_level(logging.ERROR):
            alert(Cause.ORDER_REJECTED, "order %s rejected", "ORD-1")
    finally:
        install_sender(previous)

    assert sender.sent == [Alert(Cause.ORDER_REJECTED, "order ORD-1 rejected")]
    [record] = caplog.records
    assert record.getMessage() == "ALERT order ORD-1 rejected"
    assert record.alert_cause == "order_rejected"


def test_without_a_sender_an_alert_is_only_logged(caplog):
    with caplog.at_level(logging.ERROR):
        raised = alert(Cause.SWEEP_HELD, "run 3 held")

    assert raised.text == "run 3 held"
    assert [r.getMessage() for r in caplog.records] == ["ALERT run 3 held"]


def test_a_mail_subject_keeps_a_multi_line_alert_on_one_line():
    config = SmtpConfig("smtp.example.com", 587, "starttls", "erp-sync@example.com", ("ops@example.com",), None, None, 10)

    mail = compose(config, Alert(Cause.MESSAGE_PARKED, "parking message m-1: ValueError: bad\nline two"), Verdict(True))

    assert mail["Subject"] == "[erp-sync] message_parked: parking message m-1: ValueError: bad\\nline two"
    assert "bad\nline two" in mail.get_content()
