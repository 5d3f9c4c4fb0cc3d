"""AMQP_URL as pika reads it: the one place its connection options (the query) are parsed."""
from __future__ import annotations

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from erp_sync.shared.errors import ConfigurationError

# What opening a connection can raise besides pika's own errors: a broker that takes the TCP
# connection and never answers ends in pika's connector timeout, which is no AMQPError (a worker's
# consumer died of it, the console answered 500); a failed TLS handshake comes through as
# ssl.SSLError, an OSError.
CONNECT_ERRORS = (pika.exceptions.AMQPError, AMQPConnectorException, OSError)


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
