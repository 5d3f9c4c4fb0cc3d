"""A real SMTP server on loopback (aiosmtpd) that keeps every mail it receives."""
from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.cli import free_port
from tests.support.waiting import wait_for


@dataclass
class Inbox:
    """What the server received, in order; `port` is where it listens."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(message["Subject"]) for message in self.messages]

    def wait_for_mails(self, count: int, timeout: float = 15.0) -> list[EmailMessage]:
        wait_for(lambda: len(self.messages) >= count, timeout=timeout)
        with self._lock:
            return list(self.messages)


@dataclass
class Login:
    """An SMTP login that accepts one user and password, and records who logged in."""

    user: str
    password: str
    logged_in: list[str] = field(default_factory=list)

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == self.user.encode() \
            and auth_data.password == self.password.encode()
        if ok:
            self.logged_in.append(self.user)
        return AuthResult(success=ok)


@contextmanager
def smtp_server(tls: str = "none", certificate: trustme.LeafCert | None = None,
                login: Login | None = None, port: int | None = None) -> Iterator[Inbox]:
    """An SMTP server; `tls` "starttls" requires STARTTLS, "implicit" speaks TLS at once (with `certificate`)."""
    inbox = Inbox(port=port or free_port())
    kwargs: dict[str, Any] = {}
    if tls != "none":
        assert certificate is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        kwargs = {"ssl_context": context} if tls == "implicit" else {"tls_context": context, "require_starttls": True}
    if login is not None:
        # aiosmtpd cannot tell that an implicit-TLS connection is encrypted: it would hide AUTH.
        kwargs |= {"authenticator": login, "auth_required": True, "auth_require_tls": tls != "implicit"}
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **kwargs)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
