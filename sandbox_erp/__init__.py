"""A stand-in ERP for development, staging and tests: the spec's endpoints, webhooks and faults."""
from __future__ import annotations

from erp_sync.sandbox_erp.app import create_app, set_public_url, shutdown
from erp_sync.sandbox_erp.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app", "set_public_url", "shutdown"]
