"""The operator console's own credentials (HTTP Basic, or a Bearer token) and its guard on forms.

With neither CONSOLE_USER/CONSOLE_PASSWORD nor CONSOLE_TOKEN set the console does not exist (404).
A form that changes something (a replay) must come from the console's own page: its Origin, when
the browser sends one, is this host, and it carries a token derived from the console's secret,
which another site can neither read nor forge.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from erp_sync.ingress.bearer import bearer_token_matches
from erp_sync.shared.settings import Settings


@dataclass(frozen=True)
class ConsoleCredentials:
    user: bytes | None
    password: bytes | None
    token: bytes | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ConsoleCredentials | None:
        """The console's credentials; None when none is set (the console is off)."""
        password = settings.console_password.get_secret_value().encode() if settings.console_password else None
        token = settings.console_token.get_secret_value().encode() if settings.console_token else None
        if password is None and token is None:
            return None
        user = settings.console_user.encode() if settings.console_user else None
        return cls(user, password, token)

    @classmethod
    def login_described(cls, settings: Settings) -> str:
        """How the console lets an operator in, or that it is off: said once at start."""
        credentials = cls.from_settings(settings)
        if credentials is None:
            return "off (set CONSOLE_USER and CONSOLE_PASSWORD, or CONSOLE_TOKEN)"
        ways = [*(["a user and password"] if credentials.password is not None else []),
                *(["a Bearer token"] if credentials.token is not None else [])]
        return "on, with " + " or ".join(ways)

    def admit(self, header: str | None) -> bool:
        """Whether `Authorization` carries the console's Basic credentials or its token."""
        if header is None:
            return False
        if self.token is not None and bearer_token_matches((self.token,), header):
            return True
        scheme, _, encoded = header.strip().partition(" ")
        if scheme.lower() != "basic" or self.user is None or self.password is None:
            return False
        try:
            user, _, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both compared every time, so the time taken says nothing about which one was wrong.
        return hmac.compare_digest(user, self.user) & hmac.compare_digest(password, self.password)

    def form_token(self) -> str:
        """The token the console's forms carry: the same in every server process, secret to other sites."""
        secret = self.password or self.token or b""
        return hmac.new(secret, b"erp-sync console form", hashlib.sha256).hexdigest()

    def form_is_genuine(self, token: str | None, origin: str | None, host: str) -> bool:
        """A form posted by the console's own page: the right token, and no foreign Origin."""
        if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
            return False
        return token is not None and hmac.compare_digest(token.encode(), self.form_token().encode())
