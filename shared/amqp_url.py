"""AMQP_URL as pika reads it: the one place its connection options (the query) are parsed."""
from __future__ import annotations

import pika

from erp_sync.shared.errors import ConfigurationError


def amqp_parameters(amqp_url: str) -> pika.URLParameters:
    """pika's parameters of the URL; ConfigurationError naming AMQP_URL when pika cannot read it.

    The settings check its scheme and port at start without pika, which the sweep's process never
    imports; what only pika knows (`?heartbeat=...`, a user without a password) is refused here, before
    any connection is tried.
    """
    try:
        return pika.URLParameters(amqp_url)
    except (ValueError, TypeError) as exc:
        # TypeError: pika unquotes a password that is not there (`amqp://user@host/`).
        detail = "a user name needs a password (user:password@)" if isinstance(exc, TypeError) else str(exc)
        raise ConfigurationError(f"AMQP_URL: {detail}") from exc
