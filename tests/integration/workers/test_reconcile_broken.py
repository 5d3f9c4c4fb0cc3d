"""A snapshot that is cut short or malformed aborts the sweep, changes nothing, and is recorded failed."""
from __future__ import annotations

import gzip
import tracemalloc

import ijson
import pytest

from erp_sync.shared.models import ReconciliationCorrection, ReconciliationRun
from tests.support.canned_http import answering
from tests.support.reconcile import levels, seed_levels
from erp_sync.workers.reconcile import run_sweep

JSON, CSV = "application/json", "text/csv"


def serving_body(content_type: str, body: bytes, extra_length: int = 0):
    """Answer every GET with `body`, declaring `extra_length` bytes more than it sends."""
    return answering(200, body, {"Content-Type": content_type}, extra_length)


BROKEN = {
    "json cut mid-array": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "q', 0, "truncated or malformed"),
    "json without a comma": (JSON, b'[{"sku": "S-1", "qty": 1} {"sku": "S-2", "qty": 0}]', 0,
                             """I expect ',' or ']' near {"sku": "S-1", "qty": 1} {"sku": "S-2", "qty": 0}]"""),
    "json cut by the connection": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 0}', 500, "broke off"),
    "csv cut mid-line": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,", 0, "qty must be an integer"),
    "csv without its last line end": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,0", 0,
                                      "snapshot CSV: the last line has no line end: the file was cut short "
                                      "(truncated), or the export does not end its last line; every line, the "
                                      "last too, must end with a line end"),
    "csv of lone CRs without its last line end": (CSV, b"sku,qty\rS-1,1\rS-2,0", 0,
                                                  "the export does not end its last line"),
    "csv of lone CRs cut in a quoted field": (CSV, b'sku,qty,note\rS-1,1,"x\r', 0, "unexpected end of data"),
    "csv cut by the connection": (CSV, b"sku,qty\r\nS-1,1\r\n", 300, "broke off"),
    "empty sku": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "", "qty": 0}]', 0, "non-empty string"),
    "fractional qty": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 0.5}]', 0, "integer"),
    "text qty": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,many\r\n", 0, "integer"),
    # ijson's C backend crashed the process on an integer of more than 4,300 digits.
    "json qty of 5,000 digits": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": ' + b"9" * 5000 + b"}]",
                                 0, "integer overflow"),
    "json qty beyond 64 bits": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 18446744073709551616}]',
                                0, "integer overflow"),
    # A figure near 2**63 - 1 was stored, and the next delta overflowed the bigint: at most 18 digits.
    "json qty at the bigint's top": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 9223372036854775807}]',
                                     0, "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "json qty of 19 digits": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 1000000000000000000}]',
                              0, "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "json qty of 19 digits below zero": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": -1000000000000000000}]',
                                         0, "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "csv qty of 19 digits": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,1000000000000000000\r\n", 0,
                             "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "csv qty beyond 64 bits": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,9223372036854775808\r\n", 0,
                               "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "csv qty of 5,000 digits": (CSV, b"sku,qty\r\nS-1,1\r\nS-2," + b"9" * 5000 + b"\r\n", 0,
                                "row 2 (S-2): qty must be an integer of at most 18 digits"),
    "nul in a sku": (CSV, b"sku,qty\r\nS-1,1\r\nS-\x002,0\r\n", 0, "row 2: sku must be a non-empty string without"),
    "url form nested deeper than the stack": (JSON, b'{"url": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 0,
                                              "not an array nor"),
    "not an object": (JSON, b'[{"sku": "S-1", "qty": 1}, 7]', 0, "not an object"),
    "json member twice": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 0, "qty": 9}]', 0,
                          "snapshot row 2: names the member 'qty' twice"),
    "duplicate sku": (JSON, b'[{"sku": "S-2", "qty": 1}, {"sku": "S-2", "qty": 0}]', 0, "appears twice"),
    "unknown form": ("text/plain", b"sku qty", 0, "Content-Type"),
    "json cut before its first byte": (JSON, b"", 100, "broke off"),
    # Which of the two files would be read is not defined: the door refuses a member named twice too.
    "url form naming url twice": (JSON, b'{"url": "http://127.0.0.1:9/a.csv", "url": "http://127.0.0.1:9/b.csv"}', 0,
                                  "snapshot JSON: an object names 'url' twice"),
    "csv that is a login page": (CSV, b"<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", 0,
                                 "snapshot CSV: a web page (or other markup), not a sku,qty file"),
    "csv that is a storage's XML error": (CSV, b'<?xml version="1.0"?>\n<Error><Code>AccessDenied</Code></Error>\n', 0,
                                          "snapshot CSV: a web page (or other markup), not a sku,qty file"),
    "csv that is a page opening with a comment": (CSV, b"<!-- sso -->\n<html><body>Sign in</body></html>\n", 0,
                                                  "snapshot CSV: a web page (or other markup), not a sku,qty file"),
    "csv that is a page opening with blank lines": (CSV, b"\n\r\n  \n<!DOCTYPE html>\n<html><body>Sign in</body></html>\n", 0,
                                                    "snapshot CSV: a web page (or other markup), not a sku,qty file"),
    "url form cut before its first byte": (JSON, b'{"url": "http://127.0.0.1:9/x.csv', 100, "broke off"),
}


@pytest.mark.parametrize(("content_type", "body", "extra", "reason"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_snapshot_changes_nothing(content_type, body, extra, reason, sweep_settings, committed_session,
                                         caplog):
    # given commerce's stock, which the broken snapshot would correct were it whole
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})

    # when a sweep reads the broken snapshot
    with serving_body(content_type, body, extra) as url:
        summary = run_sweep(sweep_settings(url))

    # then nothing changed, the run is recorded failed with the reason, and a person is alerted
    # (a stream the connection cut is the ERP's outage; the rest, a snapshot the next slot may read alike)
    assert levels(committed_session) == {"S-1": 5, "S-2": 5}
    assert summary.status == "failed" and reason in (summary.error or "")
    assert "\n" not in (summary.error or ""), "an alert's and the run's error is one line"
    run = committed_session.get(ReconciliationRun, summary.run_id)
    assert run is not None and run.status == "failed" and run.finished_at is not None
    assert committed_session.query(ReconciliationCorrection).count() == 0
    assert alerts_of(caplog) == [("erp_unreachable" if reason == "broke off" else "sweep_failed",
                                  f"ALERT reconciliation run {summary.run_id} failed")]


def alerts_of(caplog) -> list[tuple[str, str]]:
    """Each ALERT logged: its cause, and its text up to the run's outcome."""
    return [(record.alert_cause, record.getMessage().split(",")[0])
            for record in caplog.records if hasattr(record, "alert_cause")]


def test_a_qty_of_5000_digits_is_a_broken_snapshot_under_ijsons_python_backend_too(
        monkeypatch, sweep_settings, committed_session):
    # given the pure-Python parser (where the C one is not installed), which reads integers with int()
    monkeypatch.setattr(ijson, "basic_parse", ijson.get_backend("python").basic_parse)
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})

    # when a sweep reads a snapshot with a qty beyond int()'s 4,300 digits
    body = b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": ' + b"9" * 5000 + b"}]"
    with serving_body(JSON, body) as url:
        summary = run_sweep(sweep_settings(url))

    # then the snapshot is broken, in a message of a few lines, and nothing changed
    assert summary.status == "failed" and "snapshot JSON: Unexpected symbol" in (summary.error or "")
    assert len(summary.error or "") < 400
    assert levels(committed_session) == {"S-1": 5, "S-2": 5}


TRICKLED = {
    "json": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "S-2", "qty": 0}]'),
    "csv": (CSV, b"sku,qty\r\nS-1,1\r\nS-2,0\r\n"),
}


@pytest.mark.parametrize(("content_type", "body"), TRICKLED.values(), ids=TRICKLED.keys())
def test_a_snapshot_trickled_past_the_sweeps_time_changes_nothing(content_type, body, sweep_settings, committed_session,
                                                                  caplog):
    # given an ERP sending its snapshot a byte every 0.1 s (each read far inside the read timeout)
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})
    with answering(200, body, {"Content-Type": content_type}, trickle_s=0.1, trickle_from="body") as url:
        # when a sweep that may run 1 s reads it
        summary = run_sweep(sweep_settings(url, reconcile_max_duration_s=1))

    # then it is cut at that time, recorded failed, a person alerted, and nothing changed
    assert summary.status == "failed" and "still reading after 1 s" in (summary.error or "")
    assert alerts_of(caplog) == [("sweep_failed", f"ALERT reconciliation run {summary.run_id} failed")]
    assert levels(committed_session) == {"S-1": 5, "S-2": 5}


def test_a_snapshot_without_a_length_cut_at_a_lines_end_changes_nothing(sweep_settings, committed_session):
    # given an ERP sending its CSV snapshot without a Content-Length, a whole line every 0.7 s
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})
    body = b"sku,qty\r\nS-1,1\r\nS-2,0\r\n"
    with answering(200, body, {"Content-Type": CSV, "Content-Length": ""}, trickle_s=0.7, trickle_from="body",
                   trickle_lines=True) as url:
        # when a sweep that may run 1 s reads it, its socket shut after the line of S-1
        summary = run_sweep(sweep_settings(url, reconcile_max_duration_s=1))

    # then the rows read so far, which end cleanly, are not taken for the whole snapshot
    assert summary.status == "failed" and "still reading after 1 s" in (summary.error or "")
    assert levels(committed_session) == {"S-1": 5, "S-2": 5}


def test_a_snapshot_whose_headers_trickle_past_the_sweeps_time_is_too_slow_not_unreachable(
        sweep_settings, committed_session):
    seed_levels(committed_session, {"S-1": 5})
    with answering(200, b"sku,qty\r\nS-1,1\r\n", {"Content-Type": CSV}, trickle_s=0.1) as url:
        summary = run_sweep(sweep_settings(url, reconcile_max_duration_s=1))

    assert summary.status == "failed" and "still reading after 1 s" in (summary.error or "")
    assert levels(committed_session) == {"S-1": 5}



HUGE = 16 * 1024 * 1024
ENDLESS_ROW = {
    "csv line without its end": (CSV, b"sku,qty\r\nS-1,1\r\nS-2," + b"7" * HUGE, {},
                                 "snapshot CSV: a line longer than 64 KiB: is it CSV?"),
    # 16 MB that travel as 16 KB: the stream is decoded as it is read
    "csv line without its end, gzip": (CSV, gzip.compress(b"sku,qty\r\nS-1,1\r\nS-2," + b"7" * HUGE),
                                       {"Content-Encoding": "gzip"}, "snapshot CSV: a line longer than 64 KiB"),
    # yajl grows a string in quadratic time (32 MB: 6 s of a core), and holds it whole
    "json string": (JSON, b'[{"sku": "S-1", "qty": 1}, {"sku": "' + b"A" * HUGE + b'", "qty": 0}]', {},
                    "snapshot JSON: more than 64 KiB without a whole item"),
    "json spaces between items": (JSON, b'[{"sku": "S-1", "qty": 1}, ' + b" " * HUGE + b'{"sku": "S-2", "qty": 0}]', {},
                                  "snapshot JSON: more than 64 KiB without a whole item"),
}


@pytest.mark.parametrize(("content_type", "body", "headers", "reason"), ENDLESS_ROW.values(), ids=ENDLESS_ROW.keys())
def test_a_row_longer_than_any_row_fails_the_run_in_flat_memory(content_type, body, headers, reason, sweep_settings,
                                                               committed_session, caplog):
    # given a snapshot whose second row runs on for 16 MB (a minified export served as CSV is one line)
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})
    with answering(200, body, {"Content-Type": content_type} | headers) as url:
        # when a sweep reads it
        tracemalloc.start()
        try:
            summary = run_sweep(sweep_settings(url))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    # then the run fails saying why, before the row was held whole, and nothing changed
    assert peak < HUGE // 4, f"peak {peak / 1e6:.1f} MB while reading"
    assert summary.status == "failed" and reason in (summary.error or "")
    assert alerts_of(caplog) == [("sweep_failed", f"ALERT reconciliation run {summary.run_id} failed")]
    assert levels(committed_session) == {"S-1": 5, "S-2": 5}


def json_page(skus: range, prefix: str = "P") -> bytes:
    """The rows of one page of a JSON snapshot, each followed by a comma (the array goes on)."""
    return "".join(f'{{"sku": "{prefix}-{n}", "qty": 1}},' for n in skus).encode()


def test_a_snapshot_repeating_a_page_fails_at_its_first_repeat(sweep_settings, committed_session, caplog):
    # given an ERP whose paging cursor loops: the same page of 1,000 SKUs over and over (1,000 of them here)
    seed_levels(committed_session, {"S-1": 5})
    written: list[int] = []
    page = json_page(range(1000))
    with answering(200, page, {"Content-Type": JSON, "Content-Length": ""}, repeat=1000, written=written,
                   first=b"[") as url:
        # when a sweep reads it
        summary = run_sweep(sweep_settings(url))

    # then the run fails at the page's first repeat, not once the stream has ended (or at the deadline)
    assert summary.status == "failed"
    assert "snapshot row 1001: SKU 'P-0' appears twice within 20,000 rows: does the ERP's export repeat a page?" in (
        summary.error or "")
    # (what the server got out includes the sockets' buffers: a few MB)
    assert written and written[0] < 300 * len(page), f"{written[0] / len(page):.0f} pages sent"
    assert alerts_of(caplog) == [("sweep_failed", f"ALERT reconciliation run {summary.run_id} failed")]
    assert levels(committed_session) == {"S-1": 5}


ENDLESS = {
    # a cursor looping back over more than the latest rows' SKUs: the index on the rows read tells
    "looping over 25,000 SKUs": (json_page(range(25_000)), "a SKU among them twice (Key (sku)=(P-"),
    "of distinct SKUs": (b"".join(json_page(range(n, n + 1000), prefix=f"D{n}") for n in range(0, 40_000, 1000)),
                         "each SKU once: the ERP's export does not end, or lists more SKUs than the setting allows"),
}


@pytest.mark.parametrize(("page", "reason"), ENDLESS.values(), ids=ENDLESS.keys())
def test_a_snapshot_past_its_row_limit_fails_saying_whether_it_repeats(page, reason, sweep_settings,
                                                                      committed_session):
    # given a snapshot that runs on, and a sweep taking at most 30,000 rows
    seed_levels(committed_session, {"S-1": 5})
    with answering(200, page, {"Content-Type": JSON, "Content-Length": ""}, repeat=4, first=b"[") as url:
        summary = run_sweep(sweep_settings(url, reconcile_max_snapshot_rows=30_000))

    # then the run fails at the limit, naming it and what the rows read look like
    assert summary.status == "failed"
    assert "snapshot: more than 30,000 rows (RECONCILE_MAX_SNAPSHOT_ROWS), " in (summary.error or "")
    assert reason in (summary.error or "")
    assert levels(committed_session) == {"S-1": 5}


def test_a_snapshot_of_as_many_rows_as_the_limit_is_read(sweep_settings, committed_session):
    seed_levels(committed_session, {"S-1": 5, "S-2": 5})
    with serving_body(CSV, b"sku,qty\r\nS-1,1\r\nS-2,2\r\n") as url:
        summary = run_sweep(sweep_settings(url, reconcile_max_snapshot_rows=2))

    assert summary.status == "succeeded" and levels(committed_session) == {"S-1": 1, "S-2": 2}
