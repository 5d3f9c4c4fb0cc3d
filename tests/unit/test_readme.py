"""The README: the settings' reference with every default, short, its links and snippet in step with the files."""
from __future__ import annotations

import re

import pytest

from erp_sync.shared.settings import Settings
from tests.support.readme import README, ROOT, order_snippet, promised, walkthrough_lines


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(field):
    rows = [line for line in README.splitlines() if line.startswith(f"| `{field.upper()}` |")]

    assert rows, f"README has no row for {field.upper()}"
    default = Settings.model_fields[field].default
    cell = rows[0].split("|")[2]
    if isinstance(default, (int, float, str)) and not isinstance(default, bool) and default != "":
        assert str(default) in cell.replace(",", "") or str(default) in cell, (field, cell)


def test_the_readme_stays_short_for_its_users():
    assert len(README.splitlines()) < 300


@pytest.mark.parametrize("document", ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                           for p in (ROOT / "docs").glob("*.md"))])
def test_every_relative_link_leads_to_a_file(document):
    path = ROOT / document
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text())

    assert [t for t in targets if not (path.parent / t).exists()] == []


def test_the_order_snippet_is_the_file_the_walkthrough_runs():
    assert order_snippet() in (ROOT / "examples" / "place_order.py").read_text()
    assert ".venv/bin/python examples/place_order.py" in "\n".join(walkthrough_lines())


def test_the_walkthrough_promises_what_its_test_can_check():
    # The e2e test waits for each `quoted` fragment of a line's comment in that line's output.
    checked = [fragment for line in walkthrough_lines() for fragment in promised(line)]

    assert '"erp_quantity": 25' in checked and '"corrected": 1' in checked and '"status": "synced"' in checked
