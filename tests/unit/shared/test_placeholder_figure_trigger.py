"""Migration 0014's trigger skips exactly the rows that hold no figure yet."""
from __future__ import annotations

import importlib
from datetime import datetime

from erp_sync.workers.stock_rule import NO_TOTAL_YET


def test_the_triggers_when_clause_names_the_stock_rules_no_total_yet():
    migration = importlib.import_module("erp_sync.shared.migrations.versions.0014_no_hold_release_for_placeholder_figures")

    assert datetime.fromisoformat(migration.NO_TOTAL_YET) == NO_TOTAL_YET
