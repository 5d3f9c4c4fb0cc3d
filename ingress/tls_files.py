"""The ingress's certificate and key, checked at start as granian will load them in each worker.

Checked where the server starts, not with the settings: a shared ConfigMap or compose environment
may name files that only the ingress's container holds.
"""
from __future__ import annotations

import ssl
from pathlib import Path

from erp_sync.shared.errors import ConfigurationError


class _EncryptedKey(Exception):
    def __str__(self) -> str:
        return "the key is encrypted, and the ingress is given no password for it"


def _no_key_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's password.
    raise _EncryptedKey


def _readable(path: Path) -> None:
    """ValueError unless this process can open the file."""
    try:
        path.open("rb").close()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _certificate(certfile: Path) -> None:
    """ValueError unless the file is readable and holds a PEM certificate."""
    _readable(certfile)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=certfile)
    except ssl.SSLError as exc:
        raise ValueError(f"no PEM certificate in {certfile}: {exc}") from exc


def _key_of(certfile: Path, keyfile: Path) -> None:
    """ValueError unless `keyfile` is readable and loads as the unencrypted private key of `certfile`'s certificate."""
    _readable(keyfile)
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile, password=_no_key_password)
    except (ssl.SSLError, _EncryptedKey) as exc:
        raise ValueError(f"not a PEM private key of the certificate in INGRESS_TLS_CERTFILE: {exc}") from exc


def check_tls_files(certfile: Path, keyfile: Path) -> None:
    """ConfigurationError naming the setting unless the files load as granian will load them."""
    try:
        _certificate(certfile)
    except ValueError as exc:
        raise ConfigurationError(f"INGRESS_TLS_CERTFILE: {exc}") from exc
    try:
        _key_of(certfile, keyfile)
    except ValueError as exc:
        raise ConfigurationError(f"INGRESS_TLS_KEYFILE: {exc}") from exc
