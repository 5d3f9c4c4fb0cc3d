"""The Grafana dashboard in deploy/grafana is importable: valid JSON, unique panel ids, a query on every panel."""
from __future__ import annotations

import json

from tests.support.prometheus import DASHBOARD, dashboard_expressions, metric_names_in


def test_every_panel_has_an_id_of_its_own_and_a_query():
    board = json.loads(DASHBOARD.read_text())

    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] and all(t["expr"].strip() for t in panel["targets"]) for panel in board["panels"])


def test_the_dashboard_reads_erp_sync_figures_only_through_the_datasource_variable():
    board = json.loads(DASHBOARD.read_text())

    assert {panel["datasource"]["uid"] for panel in board["panels"]} == {"${datasource}"}
    assert "erp_sync_messages_total" in metric_names_in("\n".join(dashboard_expressions()))
