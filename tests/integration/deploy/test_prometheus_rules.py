"""The alert rules and the dashboard in deploy/ are valid, and the rules behave as their promtool unit tests say."""
from __future__ import annotations

import json

from tests.support.prometheus import RULES, RULES_TEST, dashboard_expressions, run_promtool


def test_promtool_accepts_the_rules():
    result = run_promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_pass_their_promtool_unit_tests():
    result = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_query_of_the_grafana_dashboard_is_valid_promql(tmp_path):
    # given the dashboard's queries as recording rules, which promtool parses
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(dashboard_expressions())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML

    # when promtool checks them
    result = run_promtool("check", "rules", str(path))

    # then each one parses
    assert result.returncode == 0, result.stdout + result.stderr
