"""The snapshot's readers: a CSV body or a JSON array read as (sku, qty) rows, in bounded memory."""
from __future__ import annotations

import io
import tracemalloc

import pytest

from erp_sync.workers.snapshot_reader import SnapshotBroken, csv_rows, json_rows

MAX_ROW_BYTES = 64 * 1024  # the bound of a row, its line end included


def read_csv(body: bytes) -> list[tuple[str, int]]:
    return list(csv_rows(io.BytesIO(body)))


def read_json(body: bytes) -> list[tuple[str, int]]:
    return list(json_rows(io.BytesIO(body)))


ROWS_TOO_LONG = {
    "csv line without its end": (read_csv, b"sku,qty\nA,1\nB," + b"7" * (4 * MAX_ROW_BYTES),
                                 "snapshot CSV: a line longer than 64 KiB: is it CSV?"),
    "csv line with its end": (read_csv, b"sku,qty\nA,1\nB,2," + b"x" * (MAX_ROW_BYTES + 1) + b"\n",
                              "snapshot CSV: a line longer than 64 KiB"),
    "csv row of many short lines": (read_csv, b'sku,qty,note\nA,1,"' + b"x\n" * MAX_ROW_BYTES + b'"\n',
                                    "snapshot CSV: a line longer than 64 KiB"),
    "json string": (read_json, b'[{"sku": "A", "qty": 1}, {"sku": "' + b"B" * (4 * MAX_ROW_BYTES) + b'", "qty": 2}]',
                    "snapshot JSON: more than 64 KiB without a whole item"),
    "json spaces": (read_json, b'[{"sku": "A", "qty": 1},' + b" " * (4 * MAX_ROW_BYTES) + b"]",
                    "snapshot JSON: more than 64 KiB without a whole item"),
}


@pytest.mark.parametrize(("read", "body", "reason"), ROWS_TOO_LONG.values(), ids=ROWS_TOO_LONG.keys())
def test_a_row_longer_than_64_kib_is_a_broken_snapshot(read, body, reason):
    with pytest.raises(SnapshotBroken, match=reason):
        read(body)


NESTED = {
    # ijson.items' prefixes grow with the depth: 20 KB of `[` took a gigabyte
    "in the array": (b'[{"sku": "A", "qty": 1}, ' + b"[" * 20_000, "snapshot row 2: not an object"),
    "in a row": (b'[{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2, "note": ' + b"[" * 20_000,
                 "snapshot row 2: nested deeper than 32"),
}


@pytest.mark.parametrize(("body", "reason"), NESTED.values(), ids=NESTED.keys())
def test_deep_nesting_is_a_broken_snapshot_in_flat_memory(body, reason):
    tracemalloc.start()
    try:
        with pytest.raises(SnapshotBroken, match=reason):
            read_json(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 2 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_a_row_may_carry_other_members_the_sweep_skips():
    body = b'[{"sku": "A", "note": {"tags": [["x"], {"y": null}], "ok": true}, "qty": 1}, {"qty": 2, "sku": "B"}]'

    assert read_json(body) == [("A", 1), ("B", 2)]


def test_rows_up_to_64_kib_are_read():
    # given rows carrying a long column the sweep does not read, just under the bound
    note = b"x" * (MAX_ROW_BYTES - 100)

    # then they are rows like any other
    assert read_csv(b"sku,qty,note\nA,1," + note + b"\nB,2," + note + b"\n") == [("A", 1), ("B", 2)]
    assert read_json(b'[{"sku": "A", "qty": 1, "note": "' + note + b'"}, {"sku": "B", "qty": 2, "note": "'
                     + note + b'"}]') == [("A", 1), ("B", 2)]


def test_a_long_snapshot_of_short_rows_is_read_whole():
    rows = [(f"SKU-{i:06d}", i) for i in range(20_000)]

    assert read_csv(b"sku,qty\r\n" + b"".join(f"{s},{q}\r\n".encode() for s, q in rows)) == rows
    assert read_json(("[" + ",\n".join(f'{{"sku": "{s}", "qty": {q}}}' for s, q in rows) + "]").encode()) == rows


LINE_ENDS = {"LF": b"\n", "CRLF": b"\r\n", "lone CR": b"\r"}


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_csv_lines_may_end_in_any_line_end(end):
    assert read_csv(end.join([b"sku,qty", b"A,5", b"B,6", b""])) == [("A", 5), ("B", 6)]


def test_blank_lines_before_the_header_are_passed_over():
    assert read_csv(b"\n \r\n,\nsku,qty\nA,5\n") == [("A", 5)]


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
def test_a_csv_whose_last_line_has_no_end_is_taken_for_a_cut(end):
    # given an export that does not end its last line: as a file cut mid-line would read
    body = end.join([b"sku,qty", b"A,5", b"B,12"])

    with pytest.raises(SnapshotBroken, match="the file was cut short .*, or the export does not end its last line; "
                                             "every line, the last too, must end with a line end"):
        read_csv(body)



TWICE = {
    "qty": (b'[{"sku": "A", "qty": 1, "qty": 999}]', "snapshot row 1: names the member 'qty' twice"),
    "sku": (b'[{"sku": "A", "qty": 1}, {"sku": "A", "sku": "B", "qty": 2}]', "snapshot row 2: names the member 'sku' twice"),
    "one the sweep skips": (b'[{"sku": "A", "qty": 1, "note": [1], "note": 2}]', "row 1: names the member 'note' twice"),
}


@pytest.mark.parametrize(("body", "reason"), TWICE.values(), ids=TWICE.keys())
def test_an_object_naming_a_member_twice_is_a_broken_snapshot(body, reason):
    # which of the two counts is not defined (the webhook door refuses the same with a 400)
    with pytest.raises(SnapshotBroken, match=reason):
        read_json(body)
