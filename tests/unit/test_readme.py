"""The README is the settings' reference: it must name every one with its default."""
from __future__ import annotations

from pathlib import Path

import pytest

from erp_sync.shared.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented_with_its_default(field):
    rows = [line for line in README.splitlines() if line.startswith(f"| `{field.upper()}` |")]

    assert rows, f"README has no row for {field.upper()}"
    default = Settings.model_fields[field].default
    cell = rows[0].split("|")[2]
    if isinstance(default, (int, float, str)) and not isinstance(default, bool) and default != "":
        assert str(default) in cell.replace(",", "") or str(default) in cell, (field, cell)
