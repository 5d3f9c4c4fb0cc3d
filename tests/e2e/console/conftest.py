"""Fixtures of the console's browser test: a sandbox ERP holding given stock for the sweeps."""
from __future__ import annotations

from tests.support.reconcile import erp  # noqa: F401
