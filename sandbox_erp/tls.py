"""A throw-away certificate authority and server certificate for `--tls` (needs trustme)."""
from __future__ import annotations

import ssl
from pathlib import Path

from erp_sync.shared.errors import ConfigurationError


def server_context(ca_file: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> ssl.SSLContext:
    """An SSL context serving a certificate from a fresh CA, whose PEM is written to `ca_file`.

    Raises:
        ConfigurationError: trustme is not installed (the sandbox extra is not).
    """
    try:
        import trustme  # only --tls needs it
    except ModuleNotFoundError as exc:
        raise ConfigurationError("--tls needs trustme: install the sandbox extra, pip install 'erp-sync[sandbox]'") from exc

    authority = trustme.CA()
    certificate = authority.issue_cert(*hosts)
    ca_file.parent.mkdir(parents=True, exist_ok=True)
    authority.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context
