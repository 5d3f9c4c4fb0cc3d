"""The alert rules shipped in deploy/prometheus are valid, and behave as their promtool unit tests say."""
from __future__ import annotations

from tests.support.prometheus import RULES, RULES_TEST, run_promtool


def test_promtool_accepts_the_rules():
    result = run_promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rules_pass_their_promtool_unit_tests():
    result = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)

    assert result.returncode == 0, result.stdout + result.stderr
