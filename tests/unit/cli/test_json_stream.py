"""Documents printed as their rows are read: the same JSON as a list would give, written item by item."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from erp_sync.cli.json_stream import print_json


@pytest.mark.parametrize("rows", [[], [{"sku": "A", "old": 1, "new": 2}],
                                  [{"sku": f"S-{n}", "old": n, "new": 0} for n in range(3)]])
def test_a_streamed_list_prints_as_the_list_would(capsys, rows):
    print_json({"run_id": 7, "corrections": iter(rows), "held_changes": iter([])})

    assert capsys.readouterr().out == json.dumps({"run_id": 7, "corrections": rows, "held_changes": []}, indent=2) + "\n"


def test_each_row_is_printed_before_the_next_is_read(capsys):
    seen_when_reading: list[str] = []

    def rows() -> Iterator[dict[str, str]]:
        for sku in ("A", "B", "C"):
            seen_when_reading.append(capsys.readouterr().out)
            yield {"sku": sku}

    print_json({"corrections": rows()})

    # when the second row was read, the first was out already; when the third was, the second
    assert '"sku": "A"' in seen_when_reading[1] and '"sku": "B"' in seen_when_reading[2]
