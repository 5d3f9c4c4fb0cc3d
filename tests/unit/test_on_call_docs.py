"""The on-call documents: every alert, ALERT cause and Prometheus rule, has its row, and every link into a section lands."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from erp_sync.shared.alerts import Cause
from erp_sync.workers.registry import WORKERS

DOCS = Path(__file__).resolve().parents[2] / "docs"
ALERTS_DOC = (DOCS / "alerts.md").read_text()
RULES = [rule for group in yaml.safe_load((DOCS.parent / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
         for rule in group["rules"]]


def _slug(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's) gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in document.read_text().splitlines() if line.startswith("#")}


def _table_row(first_cell: str) -> list[str] | None:
    for line in ALERTS_DOC.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] == first_cell:
            return cells
    return None


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["alert"])
def test_every_prometheus_rule_has_a_row_with_its_severity_and_where_to_go(rule):
    row = _table_row(f"`{rule['alert']}`")

    assert row is not None, f"docs/alerts.md has no row for {rule['alert']}"
    assert row[1] == rule["labels"]["severity"]
    assert row[2], f"{rule['alert']}: no runbook section named"


@pytest.mark.parametrize("cause", list(Cause), ids=lambda cause: cause.value)
def test_every_alert_cause_has_a_row(cause):
    assert _table_row(f"`{cause.value}`") is not None, f"docs/alerts.md has no row for {cause.value}"


@pytest.mark.parametrize("document", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_every_link_into_a_section_finds_it(document):
    links = re.findall(r"\]\(([^)#:]*)#([^)]+)\)", document.read_text())

    missing = [(target or document.name, anchor) for target, anchor in links
               if anchor not in _anchors(document.parent / target if target else document)]
    assert missing == []


def test_the_sample_scrape_configuration_scrapes_the_ingress_and_every_worker():
    metrics_doc = (DOCS / "metrics.md").read_text()
    sample = yaml.safe_load(metrics_doc.split("```yaml\n", 1)[1].split("```", 1)[0])

    jobs = {job["job_name"] for job in sample["scrape_configs"]}
    assert jobs == {"erp-sync-ingress", *(f"erp-sync-{worker}" for worker in WORKERS)}


def test_a_missing_role_pages_for_the_ingress_and_every_worker():
    missing = next(rule for rule in RULES if rule["alert"] == "ErpSyncWorkerMissing")

    jobs = set(re.findall(r'absent\(up\{job="([^"]+)"\}\)', missing["expr"]))
    assert jobs == {"erp-sync-ingress", *(f"erp-sync-{worker}" for worker in WORKERS)}
