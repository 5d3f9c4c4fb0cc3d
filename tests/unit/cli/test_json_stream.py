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


def test_rows_are_printed_while_later_ones_are_still_unread(capsys):
    printed_when_reading: list[str] = []

    def rows() -> Iterator[dict[str, str]]:
        for n in range(5000):
            printed_when_reading.append(capsys.readouterr().out)
            yield {"sku": f"S-{n}"}

    print_json({"corrections": rows()})

    # the first rows were out long before the last was read: the list is never held whole
    assert '"sku": "S-0"' in "".join(printed_when_reading[:-1])
    assert json.loads("".join(printed_when_reading) + capsys.readouterr().out)["corrections"][-1] == {"sku": "S-4999"}
