"""The sandbox's configuration from the environment."""
from __future__ import annotations

import pytest

from erp_sync.sandbox_erp.settings import config_from_env


def test_config_from_env_falls_back_on_erp_sync_settings():
    config = config_from_env({"ERP_API_TOKEN": "t", "ERP_WEBHOOK_SECRET": "new,old", "INGRESS_PORT": "8123",
                              "SANDBOX_ERP_TIME_SCALE": "0.01", "SANDBOX_ERP_SNAPSHOT_FORMAT": "csv",
                              "SANDBOX_ERP_WEBHOOK_CONCURRENCY": "4"})

    assert (config.api_token, config.webhook_secret) == ("t", "new")
    assert config.webhook_url == "http://127.0.0.1:8123/webhooks/erp"
    assert (config.time_scale, config.snapshot_format, config.generate_groups) == (0.01, "csv", 20)
    assert config.webhook_concurrency == 4
    with pytest.raises(ValueError, match="SANDBOX_ERP_SNAPSHOT_FORMAT"):
        config_from_env({"SANDBOX_ERP_SNAPSHOT_FORMAT": "xml"})
