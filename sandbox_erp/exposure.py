"""Whether the sandbox may listen where it was asked to: well-known secrets stay on loopback."""
from __future__ import annotations

import ipaddress

from erp_sync.sandbox_erp.config import SandboxConfig
from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import PLACEHOLDERS

# Values anyone can read in this repository: the sandbox's own default and what `make run` used to export.
WELL_KNOWN = PLACEHOLDERS | {SandboxConfig.api_token, "local-development-webhook-secret"}
MIN_SECRET_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches; "", "0.0.0.0" and other names count as exposed."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def is_well_known(secret: str) -> bool:
    """True for a default, a placeholder or a value too short to resist guessing."""
    return secret.strip().lower() in WELL_KNOWN or len(secret) < MIN_SECRET_LENGTH


def check_exposure(host: str, config: SandboxConfig) -> None:
    """Refuse to serve beyond loopback with a well-known token or webhook secret.

    Raises:
        ConfigurationError: naming the variable to set.
    """
    if is_loopback(host):
        return  # development on this machine: the defaults are fine
    checks = (
        ("SANDBOX_ERP_API_TOKEN (or ERP_API_TOKEN)", config.api_token),
        ("SANDBOX_ERP_ADMIN_TOKEN", config.admin_token),
        ("SANDBOX_ERP_WEBHOOK_SECRET (or ERP_WEBHOOK_SECRET)", config.webhook_secret),
    )
    for variable, secret in checks:
        if secret is not None and is_well_known(secret):
            raise ConfigurationError(
                f"{variable} is a well-known value: the sandbox ERP refuses to listen on {host or 'every address'}"
                f" with it; set a secret of at least {MIN_SECRET_LENGTH} characters, or serve on 127.0.0.1")
