"""The sandbox refuses to listen beyond loopback with a token or secret anyone can read."""
from __future__ import annotations

import pytest

from erp_sync.sandbox_erp import SandboxConfig
from erp_sync.sandbox_erp.exposure import check_exposure, is_loopback
from erp_sync.shared.errors import ConfigurationError

STRONG = "a-strong-token-of-this-deployment"
STRONG_CONFIG = SandboxConfig(api_token=STRONG, admin_token=STRONG + "-admin", webhook_secret=STRONG + "-hmac")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_addresses_are_loopback(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.0.0.5", "192.168.1.20", "sandbox.example.test"])
def test_every_other_address_or_name_is_exposed(host):
    assert not is_loopback(host)


@pytest.mark.parametrize("config", [SandboxConfig(), SandboxConfig(webhook_secret="local-development-webhook-secret")])
def test_the_defaults_stay_allowed_on_loopback(config):
    check_exposure("127.0.0.1", config)


@pytest.mark.parametrize(("config", "variable"), [
    (SandboxConfig(), "SANDBOX_ERP_API_TOKEN"),
    (SandboxConfig(api_token="changeme"), "SANDBOX_ERP_API_TOKEN"),
    (SandboxConfig(api_token="short-token"), "SANDBOX_ERP_API_TOKEN"),
    (SandboxConfig(api_token=STRONG, admin_token="sandbox-erp-token"), "SANDBOX_ERP_ADMIN_TOKEN"),
    (SandboxConfig(api_token=STRONG, webhook_secret="local-development-webhook-secret"), "SANDBOX_ERP_WEBHOOK_SECRET"),
    (SandboxConfig(api_token=STRONG, webhook_secret="<your secret>"), "SANDBOX_ERP_WEBHOOK_SECRET"),
])
def test_a_well_known_secret_beyond_loopback_is_refused_naming_its_variable(config, variable):
    with pytest.raises(ConfigurationError, match=variable):
        check_exposure("0.0.0.0", config)


def test_secrets_of_the_deployment_may_listen_anywhere():
    check_exposure("0.0.0.0", STRONG_CONFIG)
    # the admin API on the API's token and no webhooks at all are fine too
    check_exposure("10.0.0.5", SandboxConfig(api_token=STRONG))
