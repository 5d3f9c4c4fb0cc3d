"""Fixtures of the command line's end-to-end tests: a sandbox ERP holding given stock."""
from __future__ import annotations

from tests.support.reconcile import erp  # noqa: F401
