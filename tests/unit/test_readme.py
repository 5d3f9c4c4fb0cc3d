"""The README: the settings' reference with every default, short, its links and snippet in step with the files."""
from __future__ import annotations

import os
import re
from fnmatch import fnmatch

import pytest

from erp_sync.shared.settings import Settings
from tests.support.readme import README, ROOT, order_snippet, promised, section, walkthrough_lines


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


def layout_picture() -> str:
    [picture] = re.findall(r"```\n(.*?)```", section("## Layout"), flags=re.DOTALL)
    return picture


def test_the_layout_picture_shows_the_import_root_as_it_is():
    picture = layout_picture()
    links = dict(re.findall(r"(\w+) -> (\.\./\w+)", picture))

    assert links == {entry.name: os.readlink(entry) for entry in (ROOT / "erp_sync").iterdir() if entry.is_symlink()}
    assert [entry.name for entry in (ROOT / "erp_sync").iterdir()
            if entry.name != "__pycache__" and entry.name not in picture] == []


def test_the_layout_picture_names_every_folder_and_each_document_and_deploy_file():
    picture = layout_picture().lower()
    ignored = [line.rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines() if line.endswith("/")]
    # Hidden folders are tools' state, but for CI's; ignored ones are built (build/, .egg-info).
    folders = [entry.name for entry in ROOT.iterdir() if entry.is_dir() and (entry.name == ".ci" or entry.name[0] != ".")
               and not any(fnmatch(entry.name, pattern) for pattern in ignored)]
    documents = [path.stem.replace("-", " ") for path in (ROOT / "docs").glob("*.md")]
    deployed = [path.name for path in (ROOT / "deploy").iterdir() if path.name != "__pycache__"]

    assert [name for name in folders if f"{name}/" not in picture and f"../{name}" not in picture] == []
    assert [name for name in documents + deployed if name.lower() not in picture] == []
