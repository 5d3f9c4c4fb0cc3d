"""Prometheus's own tools for the deploy files, and reading what a process exposes on /metrics."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
DASHBOARD = DEPLOY / "grafana" / "erp-sync.json"
# Only this says "no promtool here, and that is fine": missing by accident, the tests fail.
SKIP_VARIABLE = "ERP_SYNC_SKIP_PROMTOOL"
_OUR_METRIC = re.compile(r"\berp_sync_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "summary": ("_sum", "_count", "_created"), "gauge": (), "info": ("_info",)}


def promtool() -> str:
    """The path of promtool (Debian's prometheus package); fails the test when it is missing."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get(SKIP_VARIABLE) == "1":
            pytest.skip(f"promtool missing and {SKIP_VARIABLE}=1")
        pytest.fail(f"promtool is missing: apt-get install prometheus (or set {SKIP_VARIABLE}=1 to skip)")
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd)


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the Grafana dashboard's panels."""
    board = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def metric_names_in(text: str) -> set[str]:
    """The erp_sync_* metric names a text (rules, expressions) mentions."""
    return set(_OUR_METRIC.findall(text))


def exposed_names(url: str, token: str | None = None) -> set[str]:
    """Every series name a /metrics page offers, families without samples yet included."""
    response = requests.get(url, timeout=30, headers={"Authorization": f"Bearer {token}"} if token else {})
    response.raise_for_status()
    names: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def sample_value(url: str, name: str, **labels: str) -> float | None:
    """The value of one sample on a /metrics page, or None when it is not there."""
    text = requests.get(url, timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
