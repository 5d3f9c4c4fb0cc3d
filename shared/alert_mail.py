"""Alert mails over SMTP: composed here, sent from a thread of their own, throttled per cause.

A handler that raises an alert holds a database transaction and maybe a message: it only queues
the alert. The mail thread asks the throttle, sends, and at each period's end mails the count it
held back. A failure (SMTP down, wrong password, the database unreachable) is logged and never
reaches the worker; with the throttle's database unreachable, the alert is mailed unthrottled. A
mail the server did not take is sent again later (`MAIL_RETRY_DELAYS_S`): the throttle counted it
as mailed, so an outage of the mail server would otherwise lose the period's first page.
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol

from erp_sync.shared.alert_throttle import PgThrottle, Verdict
from erp_sync.shared.alerts import Alert, install_sender
from erp_sync.shared.errors import ErpSyncError
from erp_sync.shared.logs import escape_controls
from erp_sync.shared.settings import Settings

logger = logging.getLogger(__name__)

SUBJECT_TEXT_CHARS = 120
# About two hours in all; a mail still not taken then is given up (the alert stays logged).
MAIL_RETRY_DELAYS_S = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)


class Throttle(Protocol):
    def occurred(self, cause: str, text: str) -> Verdict: ...

    def period_ended(self, cause: str) -> tuple[Verdict, str]: ...


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    tls: Literal["starttls", "implicit", "none"]
    sender: str
    recipients: tuple[str, ...]
    user: str | None
    password: str | None
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The mail settings; None when ALERT_SMTP_HOST is unset (alerts are then only logged)."""
        if settings.alert_smtp_host is None:
            return None
        password = settings.alert_smtp_password.get_secret_value() if settings.alert_smtp_password else None
        return cls(settings.alert_smtp_host, settings.alert_smtp_port, settings.alert_smtp_tls,
                   settings.alert_email_from, settings.alert_email_to, settings.alert_smtp_user, password,
                   settings.alert_smtp_timeout_s)


def compose(config: SmtpConfig, alert: Alert, verdict: Verdict, *, count_only: bool = False) -> EmailMessage:
    """The mail of one alert, or of the count a period held back (`count_only`)."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(config.recipients)
    where = f"{socket.gethostname()} pid {os.getpid()}"
    since = verdict.since.isoformat(timespec="seconds") if verdict.since else "the last mail"
    if count_only:
        message["Subject"] = f"[erp-sync] {alert.cause}: {verdict.unmailed} more since {since}"
        body = f"{alert.cause} came {verdict.unmailed} more times since the mail of {since}.\n\nThe latest:\n{alert.text}\n"
    else:
        # A header may not hold a line break; a park reason (an exception's text) may.
        message["Subject"] = f"[erp-sync] {alert.cause}: {escape_controls(alert.text)[:SUBJECT_TEXT_CHARS]}"
        body = f"{alert.text}\n"
        if verdict.unmailed:
            body += f"\n{alert.cause} also came {verdict.unmailed} more times since the mail of {since}.\n"
    message.set_content(body + f"\nRaised by {where}; each cause mails at most once per throttle period.\n")
    return message


def deliver(config: SmtpConfig, message: EmailMessage) -> None:
    """Send one mail, raising smtplib's or the socket's error."""
    context = ssl.create_default_context()
    smtp = (smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_s, context=context)
            if config.tls == "implicit" else smtplib.SMTP(config.host, config.port, timeout=config.timeout_s))
    with smtp:
        if config.tls == "starttls":
            smtp.starttls(context=context)
        if config.user is not None:
            smtp.login(config.user, config.password or "")
        smtp.send_message(message)


@dataclass(frozen=True)
class _Undelivered:
    """A mail the server did not take, to send again at `due` (monotonic), its `tries`-th retry."""

    due: float
    cause: str
    message: EmailMessage
    tries: int


class MailingSender:
    """Queues alerts and mails them from its own thread, one mail per cause and period."""

    def __init__(self, config: SmtpConfig, throttle: Throttle,
                 retry_delays_s: tuple[float, ...] = MAIL_RETRY_DELAYS_S) -> None:
        self._config = config
        self._throttle = throttle
        self._retry_delays_s = retry_delays_s
        self._queue: queue.Queue[Alert | None] = queue.Queue()
        self._rechecks: dict[str, tuple[float, Alert]] = {}  # cause -> (monotonic due, latest alert)
        self._undelivered: list[_Undelivered] = []
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def send(self, alert: Alert) -> None:
        with self._lock:
            # Started on first use, in the process that uses it: a thread does not survive a fork.
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="alert-mail", daemon=True)
                self._thread.start()
        self._queue.put(alert)

    def close(self, timeout_s: float = 10.0) -> None:
        """Mail what is queued, then stop; a count held back goes out with the cause's next mail."""
        if self._thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            due = min([*(at for at, _ in self._rechecks.values()), *(mail.due for mail in self._undelivered)],
                      default=None)
            try:
                item = self._queue.get(timeout=None if due is None else max(0.0, due - time.monotonic()))
            except queue.Empty:
                self._run_due()
                continue
            if item is None:
                for mail in self._undelivered:
                    logger.error("alert mail for %s not delivered before the process stopped; the alert stays "
                                 "logged", mail.cause)
                return
            self._guarded(self._on_alert, item)
            self._run_due()

    def _run_due(self) -> None:
        for cause, (at, latest) in list(self._rechecks.items()):
            if at <= time.monotonic():
                del self._rechecks[cause]
                self._guarded(self._on_period_end, latest)
        due = [mail for mail in self._undelivered if mail.due <= time.monotonic()]
        self._undelivered = [mail for mail in self._undelivered if mail.due > time.monotonic()]
        for mail in due:
            self._mail(mail.cause, mail.message, tries=mail.tries)

    def _mail(self, cause: str, message: EmailMessage, *, tries: int = 0) -> bool:
        """Send `message`; when the server does not take it, keep it to send again later. Whether it went."""
        try:
            deliver(self._config, message)
        except (OSError, smtplib.SMTPException) as exc:
            if tries >= len(self._retry_delays_s):
                logger.error("alert mail for %s failed %d times, given up (%s); the alert stays logged",
                             cause, tries + 1, exc)
                return False
            delay_s = self._retry_delays_s[tries]
            logger.warning("alert mail for %s failed (%s); trying again in %.0f s", cause, exc, delay_s)
            self._undelivered.append(_Undelivered(time.monotonic() + delay_s, cause, message, tries + 1))
            return False
        return True

    @staticmethod
    def _guarded(step: Callable[[Alert], None], alert: Alert) -> None:
        try:
            step(alert)
        except Exception:  # noqa: BLE001 (a mail failure must never reach a worker)
            logger.exception("alert mail for %s failed; the alert stays logged", alert.cause)

    def _on_alert(self, alert: Alert) -> None:
        try:
            verdict = self._throttle.occurred(alert.cause, alert.text)
        except ErpSyncError as exc:
            logger.warning("alert throttle unreachable (%s); mailing %s unthrottled", exc, alert.cause)
            verdict = Verdict(mail=True)
        if verdict.mail:
            if self._mail(alert.cause, compose(self._config, alert, verdict)):
                logger.info("alert %s mailed to %s", alert.cause, ", ".join(self._config.recipients))
        elif verdict.recheck_in_s is not None:
            self._recheck(alert, verdict.recheck_in_s)

    def _on_period_end(self, alert: Alert) -> None:
        verdict, latest_text = self._throttle.period_ended(alert.cause)
        if verdict.mail:
            latest = Alert(alert.cause, latest_text or alert.text)
            if self._mail(alert.cause, compose(self._config, latest, verdict, count_only=True)):
                logger.info("alert %s: count of %d mailed", alert.cause, verdict.unmailed)
        elif verdict.recheck_in_s is not None:
            self._recheck(alert, verdict.recheck_in_s)

    def _recheck(self, alert: Alert, in_s: float) -> None:
        # A little after the period's end on the database's clock, so the check finds it over.
        self._rechecks[alert.cause] = (time.monotonic() + in_s + 0.05, alert)


def install_alert_mail(settings: Settings) -> MailingSender | None:
    """Mail this process's alerts when ALERT_SMTP_HOST is set; they are logged either way."""
    config = SmtpConfig.from_settings(settings)
    if config is None:
        return None
    sender = MailingSender(config, PgThrottle(settings.database_url, settings.alert_throttle_s))
    install_sender(sender)
    atexit.register(sender.close)
    return sender
