"""The sandbox's configuration read from environment variables (the CLI's defaults)."""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from erp_sync.sandbox_erp.config import SNAPSHOT_FORMATS, SandboxConfig

DEFAULT_PORT = 8900


def _first_secret(value: str | None) -> str | None:
    # ERP_WEBHOOK_SECRET may list several during rotation; the ERP signs with the first.
    return value.split(",")[0].strip() or None if value else None


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "false").lower() in ("1", "true", "yes")


def config_from_env(environ: Mapping[str, str] | None = None) -> SandboxConfig:
    """A SandboxConfig from SANDBOX_ERP_* variables, falling back on erp-sync's own settings."""
    env = os.environ if environ is None else environ
    ingress_port = env.get("INGRESS_PORT", "8000")
    form = env.get("SANDBOX_ERP_SNAPSHOT_FORMAT", "json")
    if form not in SNAPSHOT_FORMATS:
        raise ValueError(f"SANDBOX_ERP_SNAPSHOT_FORMAT must be one of {', '.join(SNAPSHOT_FORMATS)}, not {form!r}")
    catalog = env.get("SANDBOX_ERP_CATALOG_FILE")
    return SandboxConfig(
        api_token=env.get("SANDBOX_ERP_API_TOKEN") or env.get("ERP_API_TOKEN") or SandboxConfig.api_token,
        admin_token=env.get("SANDBOX_ERP_ADMIN_TOKEN") or None,
        database=env.get("SANDBOX_ERP_DATABASE", ":memory:"),
        catalog_file=Path(catalog) if catalog else None,
        generate_groups=int(env.get("SANDBOX_ERP_GROUPS", "0" if catalog else "20")),
        variants_per_group=int(env.get("SANDBOX_ERP_VARIANTS", "3")),
        random_seed=int(env.get("SANDBOX_ERP_RANDOM_SEED", "0")),
        public_url=env.get("SANDBOX_ERP_PUBLIC_URL") or None,
        webhook_url=env.get("SANDBOX_ERP_WEBHOOK_URL", f"http://127.0.0.1:{ingress_port}/webhooks/erp") or None,
        webhook_secret=_first_secret(env.get("SANDBOX_ERP_WEBHOOK_SECRET") or env.get("ERP_WEBHOOK_SECRET")),
        webhook_ca_bundle=env.get("SANDBOX_ERP_WEBHOOK_CA_BUNDLE") or None,
        time_scale=float(env.get("SANDBOX_ERP_TIME_SCALE", "1")),
        webhook_concurrency=max(1, int(env.get("SANDBOX_ERP_WEBHOOK_CONCURRENCY", "1"))),
        timestamp_precision="ms" if env.get("SANDBOX_ERP_TIMESTAMP_PRECISION", "s") == "ms" else "s",
        reference_ids=_flag(env, "SANDBOX_ERP_REFERENCE_IDS"),
        snapshot_format=form,
        allow_oversell=_flag(env, "SANDBOX_ERP_ALLOW_OVERSELL"),
    )
