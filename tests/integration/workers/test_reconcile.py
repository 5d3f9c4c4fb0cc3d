"""The nightly sweep against real PostgreSQL and the sandbox ERP over real HTTP."""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from sqlalchemy import select, text

from erp_sync.sandbox_erp.tls import server_context
from erp_sync.ingress.availability import stock_view
from erp_sync.shared.errors import DatabaseUnavailable
from erp_sync.shared.models import (
    Order,
    ReconciliationCorrection,
    ReconciliationRun,
    StockChange,
    StockHold,
)
from erp_sync.workers.reconcile import INTERRUPTED, LOCK_KEY, run_sweep
from erp_sync.workers.stock import StockEvent, apply_stock_events
from erp_sync.workers.stock_rule import Delta, Total
from erp_sync.workers.reconcile_history import history, show
from tests.support.canned_http import answering
from tests.support.reconcile import LONG_AGO, TOKEN, levels, seed_levels


@pytest.mark.parametrize("form", ["json", "csv", "url"])
def test_drift_is_corrected_in_every_snapshot_form(form, erp, sweep_settings, committed_session):
    # given the ERP and commerce disagreeing on one SKU of three
    url = erp({"A-1": 10, "A-2": 0, "A-3": 7}, snapshot_format=form)
    seed_levels(committed_session, {"A-1": 10, "A-2": 5, "A-3": 7})

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then the drifted SKU carries the ERP's figure, and the run says so
    assert levels(committed_session) == {"A-1": 10, "A-2": 0, "A-3": 7}
    assert (summary.status, summary.snapshot_form) == ("succeeded", form)
    assert (summary.checked, summary.mismatched, summary.corrected, summary.newer_kept) == (3, 1, 1, 0)
    correction = committed_session.scalars(select(ReconciliationCorrection)).one()
    assert (correction.run_id, correction.sku, correction.old_qty, correction.new_qty) == (summary.run_id, "A-2", 5, 0)
    change = committed_session.scalars(select(StockChange)).one()
    assert (change.sku, change.quantity, change.reason, change.event_id) == ("A-2", 0, "RECONCILE",
                                                                           f"reconcile:{summary.run_id}")


BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", BOM + b'[{"sku": "A-1", "qty": 1}]'),
    ("application/json", BOM + b'\r\n  [{"sku": "A-1", "qty": 1}]'),
    ("text/csv", BOM + b"sku,qty\r\nA-1,1\r\n"),
], ids=["json", "json with space after the BOM", "csv"])
def test_a_snapshot_starting_with_a_byte_order_mark_is_read(content_type, body, sweep_settings, committed_session):
    # given an ERP whose export tool writes a UTF-8 byte order mark before the snapshot
    seed_levels(committed_session, {"A-1": 5})

    # when a sweep reads it
    with answering(200, body, {"Content-Type": content_type}) as url:
        summary = run_sweep(sweep_settings(url))

    # then the mark is no part of the figures: the drift is corrected
    assert summary.status == "succeeded", summary.error
    assert levels(committed_session) == {"A-1": 1}


def test_a_csv_snapshot_with_lone_cr_line_ends_is_read(sweep_settings, committed_session):
    # given an export writing old Mac line ends, a lone CR, the last line's too
    seed_levels(committed_session, {"A-1": 5, "A-2": 5})
    with answering(200, b"sku,qty\rA-1,1\rA-2,5\r", {"Content-Type": "text/csv"}) as url:
        summary = run_sweep(sweep_settings(url))

    assert summary.status == "succeeded", summary.error
    assert levels(committed_session) == {"A-1": 1, "A-2": 5}


def test_a_snapshot_dated_hours_ahead_does_not_stamp_the_correction_ahead(sweep_settings, committed_session, caplog):
    # given an ERP behind a server writing its local time as GMT: its answer's Date 5.5 hours ahead
    seed_levels(committed_session, {"A-1": 10})
    ahead = format_datetime(datetime.now(UTC) + timedelta(hours=5, minutes=30), usegmt=True)
    with answering(200, b"sku,qty\r\nA-1,7\r\n", {"Content-Type": "text/csv", "Date": ahead}) as url, \
            caplog.at_level(logging.WARNING):
        summary = run_sweep(sweep_settings(url))

    # when the ERP's next sale arrives, stamped now on its (right) clock
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    decision = apply_stock_events(committed_session, [StockEvent("evt_sale_A-1", "A-1", Total(6, now))])[0]
    committed_session.commit()

    # then the sweep corrected the drift on our clock, said why, and the sale is applied, not dropped as stale
    assert summary.status == "succeeded", summary.error
    assert decision.outcome.value == "applied" and levels(committed_session) == {"A-1": 6}
    assert any("ahead of our clock" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_a_figure_past_32_bits_is_corrected_and_recorded(erp, sweep_settings, committed_session):
    # given an ERP figure no 32-bit column holds, which commerce has not yet
    url = erp({"A-1": 3 * 10**9})
    seed_levels(committed_session, {"A-1": 5})

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then commerce carries it, and the correction and the history record it
    assert summary.status == "succeeded"
    assert levels(committed_session) == {"A-1": 3 * 10**9}
    correction = committed_session.scalars(select(ReconciliationCorrection)).one()
    assert (correction.old_qty, correction.new_qty) == (5, 3 * 10**9)
    assert committed_session.scalars(select(StockChange.resulting_quantity)).one() == 3 * 10**9


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b'[{"sku": "A-1", "qty": 999999999999999999}, {"sku": "A-2", "qty": -999999999999999999}]'),
    ("text/csv", b"sku,qty\r\nA-1,999999999999999999\r\nA-2,-999999999999999999\r\n"),
], ids=["json", "csv"])
def test_a_figure_of_18_digits_is_corrected_and_a_delta_still_applies(content_type, body, sweep_settings,
                                                                       committed_session):
    # given an ERP counting figures of 18 digits, the most a snapshot may carry
    seed_levels(committed_session, {"A-1": 5, "A-2": 5})
    with answering(200, body, {"Content-Type": content_type}) as url:
        summary = run_sweep(sweep_settings(url))

    # when a receipt's delta arrives after the sweep
    later = datetime.now(UTC) + timedelta(minutes=5)
    decision = apply_stock_events(committed_session, [StockEvent("evt_receipt_A-1", "A-1", Delta(1000, later))])[0]
    committed_session.commit()

    # then both figures were taken, and the delta applied on top
    assert summary.status == "succeeded", summary.error
    assert decision.outcome.value == "applied"
    assert levels(committed_session) == {"A-1": 10**18 + 999, "A-2": -(10**18 - 1)}


def test_a_figure_the_erp_stamps_in_whole_seconds_after_a_correction_applies(erp, sweep_settings,
                                                                              committed_session):
    # given a sweep that corrected a drifted SKU to the ERP's 80
    url = erp({"W-1": 80})
    seed_levels(committed_session, {"W-1": 81})
    assert run_sweep(sweep_settings(url)).corrected == 1

    # when the ERP's figure of a sale made just after the snapshot arrives, stamped in whole seconds
    stamped = datetime.now(UTC).replace(microsecond=0)
    decision = apply_stock_events(committed_session, [StockEvent("evt_sale_W-1", "W-1", Total(79, stamped))])[0]
    committed_session.commit()

    # then it applies: the correction was stamped no later than the ERP's clock at the snapshot,
    # not with our clock's fraction of that second (the shop oversold one until the next figure)
    assert decision.outcome.value == "applied"
    assert levels(committed_session) == {"W-1": 79}


def test_figure_newer_than_the_snapshot_stays(erp, sweep_settings, committed_session):
    # given a webhook that applied a figure stamped after the sweep began
    url = erp({"B-1": 3})
    seed_levels(committed_session, {"B-1": 9}, as_of=datetime.now(UTC) + timedelta(minutes=5))

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then the newer figure stays and is reported as kept
    assert levels(committed_session) == {"B-1": 9}
    assert (summary.mismatched, summary.corrected, summary.newer_kept) == (1, 0, 1)


def test_sales_stamped_after_the_snapshot_began_still_count(erp, sweep_settings, committed_session):
    # given two SKUs the ERP counts 10 and 8 of, with a sale of one unit each stamped after the
    # sweep begins and applied by the inventory worker before the sweep corrects anything;
    # commerce's F-2 had drifted to 5 before its sale
    url = erp({"F-1": 10, "F-2": 8})
    seed_levels(committed_session, {"F-1": 10, "F-2": 5})
    sale_time = datetime.now(UTC) + timedelta(minutes=5)
    for sku in ("F-1", "F-2"):
        apply_stock_events(committed_session, [StockEvent(f"evt_sale_{sku}", sku, Delta(-1, sale_time))])
    committed_session.commit()

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then F-1 is no drift and keeps its sale; F-2 is corrected to the ERP's figure less its sale
    assert levels(committed_session) == {"F-1": 9, "F-2": 7}
    assert (summary.mismatched, summary.corrected, summary.newer_kept) == (1, 1, 0)
    correction = committed_session.scalars(select(ReconciliationCorrection)).one()
    assert (correction.sku, correction.old_qty, correction.new_qty) == ("F-2", 4, 7)
    change = committed_session.scalars(select(StockChange).where(StockChange.reason == "RECONCILE")).one()
    assert (change.sku, change.quantity, change.resulting_quantity) == ("F-2", 8, 7)


def test_a_sku_with_a_sale_stamped_while_the_snapshot_streamed_is_left_alone(erp, sweep_settings,
                                                                           committed_session):
    # given an ERP whose snapshot takes a second to answer, and a drifted SKU with a sale stamped
    # half a second into the sweep: the snapshot may or may not include it
    url = erp({"G-1": 10})
    erp.latest_app().extensions["sandbox_erp.faults"].set("slow", 503, 1000, [])
    seed_levels(committed_session, {"G-1": 5})
    sale_time = datetime.now(UTC) + timedelta(seconds=0.5)
    apply_stock_events(committed_session, [StockEvent("evt_sale_G-1", "G-1", Delta(-1, sale_time))])
    committed_session.commit()

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then the SKU is not corrected on a guess, and is reported as kept
    assert levels(committed_session) == {"G-1": 4}
    assert (summary.mismatched, summary.corrected, summary.newer_kept) == (1, 0, 1)


def test_held_stock_stays_held(erp, sweep_settings, committed_session):
    # given 3 held for an order the ERP has not taken yet, and the ERP's figure drifted to 8
    url = erp({"C-1": 8})
    seed_levels(committed_session, {"C-1": 10})
    order = Order(order_id="ORD-REC-1", order_date=LONG_AGO, customer_ref="CUST-1")
    order.holds.append(StockHold(sku="C-1", quantity=3))
    committed_session.add(order)
    committed_session.commit()

    # when a sweep runs
    run_sweep(sweep_settings(url))

    # then the ERP figure is corrected and the hold is still open
    committed_session.expire_all()
    view = stock_view(committed_session, "C-1")
    assert view is not None and (view.erp_quantity, view.reserved, view.available) == (8, 3, 5)
    assert committed_session.scalars(select(StockHold)).one().released_at is None


def test_missing_skus_are_reported_both_ways_and_not_guessed(erp, sweep_settings, committed_session):
    # given a SKU only the ERP has and one only commerce has
    url = erp({"D-1": 1, "D-ERP-ONLY": 4})
    seed_levels(committed_session, {"D-1": 1, "D-SHOP-ONLY": 2})

    # when a sweep runs
    summary = run_sweep(sweep_settings(url))

    # then both are reported and neither is inserted nor removed
    assert summary.missing_in_commerce.count == 1 and summary.missing_in_commerce.skus == ["D-ERP-ONLY"]
    assert summary.missing_in_erp.count == 1 and summary.missing_in_erp.skus == ["D-SHOP-ONLY"]
    assert levels(committed_session) == {"D-1": 1, "D-SHOP-ONLY": 2}
    assert (summary.checked, summary.mismatched) == (1, 0)


@pytest.mark.parametrize(("share", "alert"), [(0.05, True), (0.5, False)])
def test_drift_above_the_share_raises_an_alert(share, alert, erp, sweep_settings, committed_session, caplog):
    # given one SKU of three drifted (33%)
    url = erp({"E-1": 1, "E-2": 2, "E-3": 3})
    seed_levels(committed_session, {"E-1": 1, "E-2": 2, "E-3": 30})

    # when a sweep runs with the alert share configured
    summary = run_sweep(sweep_settings(url, reconcile_drift_alert_share=share))

    # then the alert is raised only above the share
    assert summary.drift_alert is alert
    assert any("ALERT" in r.getMessage() for r in caplog.records if r.levelname == "ERROR") is alert


def test_two_sweeps_started_together_run_once(erp, sweep_settings, committed_session):
    # given a slow ERP, so the first sweep is still running when the second starts
    url = erp({"F-1": 1})
    seed_levels(committed_session, {"F-1": 2})
    requests.put(f"{url}/admin/faults", json={"mode": "slow", "delay_ms": 1500},
                 headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).raise_for_status()
    settings = sweep_settings(url)
    start = threading.Barrier(2)
    results = []

    def sweep() -> None:
        start.wait()
        results.append(run_sweep(settings))

    # when two sweeps start at the same moment
    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # then one ran and the other was skipped at once
    assert sorted(s.status for s in results) == ["skipped", "succeeded"]
    assert levels(committed_session) == {"F-1": 1}


def test_the_snapshot_is_read_over_tls_trusting_the_configured_ca(erp, sweep_settings, committed_session, tmp_path):
    # given an ERP serving HTTPS with a certificate of a private CA
    ca_file = tmp_path / "erp-ca.pem"
    url = erp({"T-1": 1}, ssl_context=server_context(ca_file))
    seed_levels(committed_session, {"T-1": 2})

    # when a sweep runs without that CA, then with it as ERP_CA_BUNDLE
    untrusted = run_sweep(sweep_settings(url))
    trusted = run_sweep(sweep_settings(url, erp_ca_bundle=ca_file))

    # then only the second trusted the ERP and corrected the SKU
    assert untrusted.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in (untrusted.error or "")
    assert "ERP_CA_BUNDLE" in (untrusted.error or "")
    assert trusted.status == "succeeded" and levels(committed_session) == {"T-1": 1}


def counting_session(on_answer=None) -> tuple[requests.Session, list[int]]:
    """A real session that notes the status of every answer it got (and may act on it)."""
    statuses: list[int] = []
    session = requests.Session()

    def note(response, *args, **kwargs):
        statuses.append(response.status_code)
        if on_answer is not None:
            on_answer(len(statuses))

    session.hooks["response"].append(note)
    return session, statuses


@pytest.mark.parametrize(("token", "path", "status", "setting"), [
    ("wrong-token", "", 401, "ERP_API_TOKEN"),
    (TOKEN, "/no-such-erp", 404, "ERP_BASE_URL"),
])
def test_a_misconfigured_erp_link_fails_the_sweep_at_once_with_an_alert(token, path, status, setting, erp,
                                                                         sweep_settings, committed_session, caplog):
    # given an ERP we would call with a wrong token, or at a wrong base URL
    url = erp({"M-1": 1}) + path
    seed_levels(committed_session, {"M-1": 2})
    http, statuses = counting_session()

    # when a sweep runs, with quick retries allowed
    with caplog.at_level("ERROR"):
        summary = run_sweep(sweep_settings(url, erp_api_token=token, erp_quick_retries=3,
                                           erp_quick_retry_base_s=0.01), http=http)

    # then the run failed naming the setting to fix, the ERP was asked once, an operator alerted
    assert summary.status == "failed" and setting in (summary.error or "") and str(status) in (summary.error or "")
    assert statuses == [status]
    assert any("ALERT" in r.getMessage() and setting in r.getMessage() for r in caplog.records)
    assert levels(committed_session) == {"M-1": 2}


def test_a_maintenance_page_answered_for_the_snapshot_fails_the_sweep_naming_what_to_check(
        sweep_settings, committed_session, caplog):
    # given a maintenance page in front of the ERP, answering 200 to the snapshot
    seed_levels(committed_session, {"M-1": 2})
    page = b"<html><body>Maintenance: back soon</body></html>"
    with answering(200, page, {"Content-Type": "text/html"}) as url, caplog.at_level("ERROR"):
        # when a sweep runs
        summary = run_sweep(sweep_settings(url))

    # then it failed as a link to fix, not as a broken export for the ERP's team, and changed nothing
    assert summary.status == "failed" and "web page, not the ERP's API" in (summary.error or "")
    assert any("ALERT" in r.getMessage() and "ERP_BASE_URL" in r.getMessage() for r in caplog.records)
    assert levels(committed_session) == {"M-1": 2}


def test_a_redirect_of_the_erps_snapshot_url_fails_the_sweep_naming_where_it_points(sweep_settings,
                                                                                   committed_session, caplog):
    # given an ERP whose snapshot URL redirects to another server, which would serve a snapshot
    seed_levels(committed_session, {"R-1": 2})
    asked: list[int] = []
    with answering(200, b"sku,qty\r\nR-1,1\r\n", {"Content-Type": "text/csv"}, written=asked) as elsewhere, \
            answering(302, b"", {"Location": f"{elsewhere}/snapshot.csv"}) as url:
        # when a sweep runs
        summary = run_sweep(sweep_settings(url))

    # then the redirect was not taken (nor the token sent there): the run failed naming the setting
    # and where the ERP points, an operator was alerted, and nothing changed
    assert asked == []
    assert summary.status == "failed", summary.error
    assert f"answered 302, a redirect to {elsewhere}/snapshot.csv: set ERP_BASE_URL" in (summary.error or "")
    assert any(getattr(r, "alert_cause", None) == "sweep_failed" for r in caplog.records)
    assert levels(committed_session) == {"R-1": 2}


def test_the_file_a_url_snapshot_names_may_redirect(sweep_settings, committed_session):
    # given an ERP answering {"url": ...} with a storage URL that redirects to where the file is
    seed_levels(committed_session, {"R-1": 2})
    with answering(200, b"sku,qty\r\nR-1,1\r\n", {"Content-Type": "text/csv"}) as bucket, \
            answering(307, b"", {"Location": f"{bucket}/export.csv"}) as storage, \
            answering(200, json.dumps({"url": f"{storage}/export.csv?sig=1"}).encode(),
                      {"Content-Type": "application/json"}) as url:
        # when a sweep runs
        summary = run_sweep(sweep_settings(url))

    # then the file was read where it was redirected to, and the drift corrected
    assert (summary.status, summary.snapshot_form) == ("succeeded", "url"), summary.error
    assert levels(committed_session) == {"R-1": 1}


@pytest.mark.parametrize(("status", "hint"), [
    (404, "no such file at the URL the ERP gave (expired, or not written yet): look at the ERP's export"),
    (403, "the URL the ERP gave was refused (expired, or not signed for us): look at the ERP's export"),
])
def test_a_snapshot_file_gone_from_the_url_the_erp_gave_fails_the_sweep_pointing_at_the_export(
        status, hint, sweep_settings, committed_session):
    # given an ERP answering {"url": ...} with a storage URL that has expired
    seed_levels(committed_session, {"R-1": 2})
    with answering(status, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"}) as storage, \
            answering(200, json.dumps({"url": f"{storage}/export.csv?sig=1"}).encode(),
                      {"Content-Type": "application/json"}) as url:
        # when a sweep runs
        summary = run_sweep(sweep_settings(url))

    # then the run failed pointing at the ERP's export, not at our settings (the URL is not ours)
    assert summary.status == "failed"
    assert f"answered {status}, {hint}" in (summary.error or "")
    assert "ERP_BASE_URL" not in (summary.error or "") and "ERP_API_TOKEN" not in (summary.error or "")
    assert levels(committed_session) == {"R-1": 2}


def test_a_login_page_at_the_url_the_erp_gave_fails_the_sweep_saying_so(sweep_settings, committed_session):
    # given an ERP answering {"url": ...} with a link whose storage answers 200 with its sign-in page
    seed_levels(committed_session, {"R-1": 2})
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form></form></body></html>\n"
    with answering(200, page, {"Content-Type": "text/html; charset=utf-8"}) as storage, \
            answering(200, json.dumps({"url": f"{storage}/export.csv?sig=1"}).encode(),
                      {"Content-Type": "application/json"}) as url:
        # when a sweep runs
        summary = run_sweep(sweep_settings(url))

    # then it failed, saying the file is a web page and where to look, and nothing changed
    assert summary.status == "failed"
    assert "a web page (or other markup), not a sku,qty file" in (summary.error or "")
    assert "has the link the ERP gave expired" in (summary.error or "")
    assert levels(committed_session) == {"R-1": 2}


def test_an_erp_outage_is_tried_a_few_times_then_fails_the_sweep(erp, sweep_settings, committed_session):
    # given an ERP answering 503 to everything
    url = erp({"O-1": 1})
    seed_levels(committed_session, {"O-1": 2})
    erp.latest_app().extensions["sandbox_erp.faults"].set("5xx", 503, 0, [])
    http, statuses = counting_session()

    # when a sweep runs
    summary = run_sweep(sweep_settings(url, erp_quick_retries=3, erp_quick_retry_base_s=0.01), http=http)

    # then it tried three times, and the run failed with the ERP's answer, nothing changed
    assert statuses == [503, 503, 503]
    assert summary.status == "failed" and "answered 503" in (summary.error or "")
    assert levels(committed_session) == {"O-1": 2}


def test_a_blip_of_the_erp_is_absorbed_by_the_quick_retries(erp, sweep_settings, committed_session):
    # given an ERP that answers 503 once, then serves again
    url = erp({"B-1": 1})
    seed_levels(committed_session, {"B-1": 2})
    faults = erp.latest_app().extensions["sandbox_erp.faults"]
    faults.set("5xx", 503, 0, [])
    http, statuses = counting_session(lambda answers: faults.set("none", 503, 0, []))

    # when a sweep runs
    summary = run_sweep(sweep_settings(url, erp_quick_retries=3, erp_quick_retry_base_s=0.01), http=http)

    # then the second try read the snapshot and the SKU was corrected
    assert statuses == [503, 200]
    assert summary.status == "succeeded" and levels(committed_session) == {"B-1": 1}


def test_a_sweep_without_the_database_raises_database_unavailable(sweep_settings):
    # given a database that does not answer
    settings = sweep_settings("http://127.0.0.1:9", database_url="postgresql+psycopg://postgres@127.0.0.1:1/erp_sync")

    # when a sweep runs, then it says so in our terms (the scheduler logs it and waits for the next slot)
    with pytest.raises(DatabaseUnavailable, match="database unavailable"):
        run_sweep(settings)


def test_a_slot_the_database_kept_from_sweeping_raises_an_alert(sweep_settings, caplog):
    from erp_sync.workers.reconcile_schedule import run_reconcile_worker

    # given a scheduler whose database does not answer, at a slot every minute
    settings = sweep_settings("http://127.0.0.1:9", database_url="postgresql+psycopg://postgres@127.0.0.1:1/erp_sync",
                              reconcile_schedule="* * * * *")
    stop = threading.Event()
    real = datetime.now(UTC)
    offset = real.replace(second=0, microsecond=0) + timedelta(minutes=5) - timedelta(seconds=0.5) - real

    # when its slot comes
    worker = threading.Thread(target=run_reconcile_worker, args=(settings, stop),
                              kwargs={"clock": lambda: datetime.now(UTC) + offset})
    worker.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=15)
        while datetime.now(UTC) < deadline and "could not run" not in caplog.text:
            threading.Event().wait(0.1)
    finally:
        stop.set()
        worker.join(10)

    # then the missed sweep is an ALERT, not a plain ERROR that no one is paged for
    [missed] = [r for r in caplog.records if "could not run" in r.getMessage()]
    assert missed.getMessage().startswith("ALERT reconciliation for slot ")
    assert "database unavailable" in missed.getMessage()


def test_one_sweep_per_schedule_slot(erp, sweep_settings, committed_session):
    # given three schedulers reaching the same slot one after the other
    url = erp({"G-1": 1})
    seed_levels(committed_session, {"G-1": 2})
    slot = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)

    # when each sweeps for it
    statuses = [run_sweep(sweep_settings(url), scheduled_for=slot).status for _ in range(3)]

    # then only the first swept
    assert statuses == ["succeeded", "skipped", "skipped"]


def test_history_and_show_read_back_the_runs(erp, sweep_settings, committed_session):
    # given two sweeps, the first correcting one SKU
    url = erp({"H-1": 1})
    seed_levels(committed_session, {"H-1": 5})
    first = run_sweep(sweep_settings(url))
    second = run_sweep(sweep_settings(url))

    # when the history and the first run are read
    runs = history(committed_session, limit=10)
    detail = show(committed_session, first.run_id)

    # then the newest comes first and the run shows its correction
    assert [r.run_id for r in runs] == [second.run_id, first.run_id]
    assert detail is not None and list(detail["corrections"]) == [{"sku": "H-1", "old": 5, "new": 1}]
    assert detail["corrected"] == 1
    assert show(committed_session, 999_999) is None


def test_metrics_show_the_latest_sweep(erp, sweep_settings, committed_session, db_engine):
    from erp_sync.shared.reconcile_metrics import exposition

    # given a sweep that corrected one SKU of two
    url = erp({"M-1": 1, "M-2": 2})
    seed_levels(committed_session, {"M-1": 1, "M-2": 20})
    run_sweep(sweep_settings(url))

    # when the metrics are scraped
    text = exposition(db_engine).decode()

    # then they read the run from the database
    assert 'erp_sync_reconcile_last_skus{kind="corrected"} 1.0' in text
    assert 'erp_sync_reconcile_runs{status="succeeded"} 1.0' in text
    assert "erp_sync_reconcile_drift_alert 1.0" in text
    assert "erp_sync_reconcile_metrics_up 1.0" in text


def test_three_schedulers_sweep_a_slot_once(erp, sweep_settings, committed_session):
    from erp_sync.workers.reconcile_schedule import run_reconcile_worker

    # given three schedulers whose clocks say a minute slot is 4 s away (time for all three to start
    # on a loaded machine: one that starts after the slot waits for the next)
    url = erp({"W-1": 1})
    seed_levels(committed_session, {"W-1": 2})
    real = datetime.now(UTC)
    boundary = real.replace(second=0, microsecond=0) + timedelta(minutes=5)
    offset = boundary - timedelta(seconds=4) - real
    settings = sweep_settings(url, reconcile_schedule="* * * * *")
    stop = threading.Event()
    workers = [threading.Thread(target=run_reconcile_worker, args=(settings, stop),
                                kwargs={"clock": lambda: datetime.now(UTC) + offset}) for _ in range(3)]

    # when they run past the slot
    for worker in workers:
        worker.start()
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while datetime.now(UTC) < deadline:
            runs = history(committed_session, limit=10)
            # A run is recorded `running` before it sweeps: wait for the sweep to end too.
            if len(runs) == 3 and all(run.status != "running" for run in runs):
                break
            threading.Event().wait(0.2)
    finally:
        stop.set()
        for worker in workers:
            worker.join(10)

    # then the slot was swept once, and the others skipped it
    assert sorted(r.status for r in runs) == ["skipped", "skipped", "succeeded"]
    assert {r.scheduled_for for r in runs} == {boundary}
    assert levels(committed_session) == {"W-1": 1}
    assert not any(worker.is_alive() for worker in workers)


def test_metrics_and_history_say_how_true_the_shop_is(erp, sweep_settings, committed_session, db_engine):
    from erp_sync.shared.reconcile_metrics import exposition
    from erp_sync.workers.reconcile_history import stock_truth

    # given two open holds, the older an hour old, one hold ended by the ERP's figure, and a
    # sweep that found one SKU of four drifted
    url = erp({"T-1": 1, "T-2": 2, "T-3": 3, "T-4": 4})
    seed_levels(committed_session, {"T-1": 1, "T-2": 2, "T-3": 3, "T-4": 40})
    now = datetime.now(UTC)
    order = Order(order_id="ORD-TRUTH-1", order_date=LONG_AGO, customer_ref="CUST-1")
    order.holds.extend([StockHold(sku="T-1", quantity=1, held_at=now - timedelta(hours=1)),
                        StockHold(sku="T-2", quantity=1, held_at=now),
                        StockHold(sku="T-3", quantity=1, released_at=now, release_reason="erp_figure")])
    committed_session.add(order)
    committed_session.commit()
    run_sweep(sweep_settings(url))

    # when the history is read in a read-only transaction (a standby's, a read-only role's), and
    # the metrics are scraped
    committed_session.execute(text("SET TRANSACTION READ ONLY"))
    truth = stock_truth(committed_session)
    committed_session.rollback()
    scraped = exposition(db_engine).decode()

    # then both tell the holds and the drift
    assert "erp_sync_stock_holds_open 2.0" in scraped
    assert 'erp_sync_stock_holds_released{reason="erp_figure"} 1.0' in scraped
    assert "erp_sync_reconcile_last_drift_share 0.25" in scraped
    age = float(next(line.split()[-1] for line in scraped.splitlines()
                     if line.startswith("erp_sync_stock_holds_oldest_open_age_seconds ")))
    assert 3590 < age < 3700
    assert (truth["holds"]["open"], truth["holds"]["released"]) == (2, {"erp_figure": 1})
    assert 3590 < truth["holds"]["oldest_open_age_s"] < 3700
    assert truth["runs"][0]["drift_share"] == 0.25
    # and the scrape's fold of the counts' changes was committed
    assert committed_session.execute(text("SELECT count(*) FROM row_count_changes")).scalar_one() == 0


def _left_running(session) -> int:
    """A run as a sweeping process killed mid-sweep leaves it; its id."""
    run_id = session.scalar(text("INSERT INTO reconciliation_runs (status) VALUES ('running') RETURNING id"))
    session.commit()
    return run_id


def _status_and_error(session, run_id):
    session.expire_all()
    run = session.get(ReconciliationRun, run_id)
    return run.status, run.error


def test_a_reconcile_worker_starting_closes_a_killed_sweeps_run_with_an_alert(sweep_settings, committed_session,
                                                                              caplog):
    from erp_sync.workers.reconcile_schedule import run_reconcile_worker

    # given a run a killed sweep left `running`
    run_id = _left_running(committed_session)

    # when a reconcile worker starts (and is stopped at once)
    stop = threading.Event()
    stop.set()
    run_reconcile_worker(sweep_settings("http://127.0.0.1:9"), stop)

    # then the run is failed, interrupted, and a person is told as of any failed sweep
    assert _status_and_error(committed_session, run_id) == ("failed", INTERRUPTED)
    [alerted] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert alerted == f"ALERT reconciliation run {run_id} failed, nothing changed: {INTERRUPTED}"


def test_a_reconcile_worker_starting_leaves_a_sweep_in_progress_alone(sweep_settings, committed_session, db_engine,
                                                                      caplog):
    from erp_sync.workers.reconcile_schedule import run_reconcile_worker

    # given a sweep in progress elsewhere (holding the sweep's lock), and its run
    run_id = _left_running(committed_session)
    stop = threading.Event()
    stop.set()
    with db_engine.connect() as sweeping:
        sweeping.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})

        # when a reconcile worker starts
        run_reconcile_worker(sweep_settings("http://127.0.0.1:9"), stop)
        sweeping.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
        sweeping.commit()

    # then the run is still running, and no alert was raised
    assert _status_and_error(committed_session, run_id) == ("running", None)
    assert not [r for r in caplog.records if r.getMessage().startswith("ALERT")]


def test_the_next_sweep_closes_a_killed_sweeps_run_with_an_alert(erp, sweep_settings, committed_session, caplog):
    # given a run a killed sweep left `running`
    url = erp({"K-1": 1})
    seed_levels(committed_session, {"K-1": 1})
    run_id = _left_running(committed_session)

    # when the next sweep runs
    summary = run_sweep(sweep_settings(url))

    # then it swept, and the killed one is failed, interrupted, with an alert naming it
    assert summary.status == "succeeded"
    assert _status_and_error(committed_session, run_id) == ("failed", INTERRUPTED)
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")] == [
        f"ALERT reconciliation run {run_id} failed, nothing changed: {INTERRUPTED}"]


@contextmanager
def _export_file(csv_body: bytes, last_modified: datetime):
    """An ERP answering the snapshot request with `{"url"}` of a CSV file last modified then; its base URL."""
    with answering(200, csv_body, {"Content-Type": "text/csv",
                                   "Last-Modified": format_datetime(last_modified, usegmt=True)}) as storage, \
            answering(200, json.dumps({"url": f"{storage}/exports/stock.csv"}).encode(),
                      {"Content-Type": "application/json"}) as url:
        yield url


def test_a_snapshot_file_made_before_the_request_does_not_undo_the_sales_since(sweep_settings, committed_session,
                                                                                caplog):
    # given a file the ERP exported ten minutes ago (A-1: 10, A-2: 4), and a sale of A-1 five minutes
    # ago that commerce applied (10 -> 7), while A-2 drifted before the export
    seed_levels(committed_session, {"A-1": 10, "A-2": 9})
    made = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    apply_stock_events(committed_session, [StockEvent("evt_sale", "A-1", Delta(-3, made + timedelta(minutes=5)))])
    committed_session.commit()

    # when a sweep reads that file
    caplog.set_level(logging.INFO, logger="erp_sync.workers.snapshot_reader")
    with _export_file(b"sku,qty\nA-1,10\nA-2,4\n", made) as url:
        summary = run_sweep(sweep_settings(url))

    # then the sale stands (the file did not count it), the drift before the export is corrected,
    # and the run counts from the file's making
    assert summary.status == "succeeded", summary.error
    assert levels(committed_session) == {"A-1": 7, "A-2": 4}
    assert summary.as_dict()["snapshot_taken_at"] <= made.isoformat()
    assert "snapshot file last modified" in caplog.text


def test_a_snapshot_file_over_a_day_old_fails_the_run_naming_the_export(sweep_settings, committed_session, caplog):
    # given the ERP answering with a file it made two days ago
    seed_levels(committed_session, {"A-1": 10})
    with _export_file(b"sku,qty\nA-1,3\n", datetime.now(UTC) - timedelta(days=2)) as url:
        summary = run_sweep(sweep_settings(url))

    # then the run failed, nothing changed, and a person is told the export is not being made
    assert summary.status == "failed"
    assert "the ERP's export is not being made" in summary.error
    assert levels(committed_session) == {"A-1": 10}
    assert any(r.getMessage().startswith("ALERT") and "export is not being made" in r.getMessage()
               for r in caplog.records)
