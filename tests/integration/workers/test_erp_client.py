"""The ERP client against the sandbox ERP over real HTTP."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from prometheus_client import REGISTRY

from erp_sync.sandbox_erp.tls import server_context
from erp_sync.workers.erp_client import ErpClient, erp_pool
from erp_sync.shared.errors import ErpMisconfigured, ErpRejected, ErpUnavailable
from erp_sync.shared.orders import decode_order
from tests.support.canned_http import answering
from tests.support.connect_proxy import ESTABLISHED, connect_proxy
from tests.support.waiting import wait_for
from tests.support.sandbox import TOKEN, running_sandbox

ORDER = decode_order(json.dumps({
    "order_id": "ORD-WEB-1001", "order_date": "2024-01-20T10:15:00Z", "customer_ref": "CUST-555",
    "line_items": [{"sku": "IPH15-128-BLK", "quantity": 2, "unit_price": 79900.00},
                   {"sku": "IPH15-128-BLU", "quantity": 1, "unit_price": 0.1}],
}).encode())


class RecordingPool(urllib3.PoolManager):
    """Real connections that keep every request sent (its headers and body) and show each answer's status."""

    def __init__(self, on_answer: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self._on_answer = on_answer

    def urlopen(self, method, url, redirect=True, **kwargs):  # type: ignore[override]
        self.sent.append({"headers": kwargs.get("headers") or {}, "body": kwargs.get("body")})
        response = super().urlopen(method, url, redirect, **kwargs)
        if self._on_answer is not None:
            self._on_answer(response.status)
        return response


@pytest.fixture
def sandbox(tmp_path):
    with running_sandbox(tmp_path) as running:
        yield running


def client_for(url: str, pool: urllib3.PoolManager | None = None, *, token: str = TOKEN, read_timeout_s: float = 5.0,
               tries: int = 3) -> ErpClient:
    return ErpClient(pool or erp_pool(url), url, token, connect_timeout_s=1.0, read_timeout_s=read_timeout_s,
                     tries=tries, backoff_base_s=0.01)


def test_import_order_posts_option_a_with_token_and_idempotency_key(sandbox):
    # given a client recording what it sends
    pool = RecordingPool()
    client = client_for(sandbox.url, pool)

    # when the order is imported
    result = client.import_order(ORDER)

    # then the ERP took it and deducted its lines
    assert (result.status, result.already_imported) == (201, False)
    assert (sandbox.stock("IPH15-128-BLK"), sandbox.stock("IPH15-128-BLU")) == (48, 41)
    [received] = sandbox.orders()
    assert received["idempotency_key"] == "ORD-WEB-1001" and received["kind"] == "order"
    # and the request was the spec's body exactly, money as numbers with 2 decimals
    [request] = pool.sent
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Idempotency-Key"] == "ORD-WEB-1001"
    assert request["body"] == (
        b'{"order_id":"ORD-WEB-1001","order_date":"2024-01-20T10:15:00Z","customer_ref":"CUST-555",'
        b'"line_items":[{"sku":"IPH15-128-BLK","quantity":2,"unit_price":79900.00},'
        b'{"sku":"IPH15-128-BLU","quantity":1,"unit_price":0.10}]}'
    )


def test_adjust_inventory_posts_negative_changes_for_the_warehouse(sandbox):
    pool = RecordingPool()

    result = client_for(sandbox.url, pool).adjust_inventory(ORDER, "WH-EAST")

    assert result.status == 201
    assert (sandbox.stock("IPH15-128-BLK"), sandbox.stock("IPH15-128-BLU")) == (48, 41)
    [received] = sandbox.orders()
    assert received["kind"] == "adjust" and received["idempotency_key"] == "ORD-WEB-1001"
    assert json.loads(pool.sent[0]["body"]) == {
        "reference_id": "ORD-WEB-1001",
        "adjustments": [{"sku": "IPH15-128-BLK", "quantity_change": -2, "warehouse_id": "WH-EAST"},
                        {"sku": "IPH15-128-BLU", "quantity_change": -1, "warehouse_id": "WH-EAST"}],
    }


def test_an_order_the_erp_already_has_counts_as_imported(sandbox):
    # given an order the ERP took
    client = client_for(sandbox.url)
    client.import_order(ORDER)

    # when it is pushed again
    result = client.import_order(ORDER)

    # then 409 is a success, and the ERP deducted it once
    assert (result.status, result.already_imported) == (409, True)
    assert sandbox.stock("IPH15-128-BLK") == 48 and len(sandbox.orders()) == 1


def test_a_4xx_answer_about_the_order_is_rejected_with_status_and_body(sandbox):
    sandbox.fault("none", reject_skus=["IPH15-128-BLU"])

    with pytest.raises(ErpRejected) as caught:
        client_for(sandbox.url).import_order(ORDER)

    assert caught.value.status == 400 and caught.value.body
    assert sandbox.orders() == [] and sandbox.stock("IPH15-128-BLK") == 50


def test_a_wrong_token_is_not_the_orders_fault_and_waits_for_an_operator(sandbox, caplog):
    # A rotated token must not reject (and unhold) every order: the order waits (an ErpUnavailable,
    # so pending), with an alert, and the ERP is not asked again at once: it would answer the same.
    pool = RecordingPool()
    with caplog.at_level("ERROR"), pytest.raises(ErpMisconfigured) as caught:
        client_for(sandbox.url, pool, token="wrong-token", tries=3).import_order(ORDER)

    assert isinstance(caught.value, ErpUnavailable) and caught.value.status == 401
    assert caught.value.url == f"{sandbox.url}/api/v1/orders/import" and len(pool.sent) == 1
    [alerted] = [r.message for r in caplog.records if r.message.startswith("ALERT")]
    assert alerted.startswith(f"ALERT order {ORDER.order_id}: ") and "ERP_API_TOKEN" in alerted
    assert alerted.count(ORDER.order_id) == 1, alerted
    assert sandbox.orders() == [] and sandbox.stock("IPH15-128-BLK") == 50
    # and the probe (which re-sends local_only orders) sees no ERP, and says why
    caplog.clear()
    with caplog.at_level("ERROR"):
        assert client_for(sandbox.url, token="wrong-token").probe() is False
    assert any(r.message.startswith("ALERT ERP probe") and "ERP_API_TOKEN" in r.message for r in caplog.records)


MAINTENANCE_PAGE = b"<html><body>Maintenance: back soon</body></html>"


@pytest.mark.parametrize(("status", "body", "content_type"), [
    (200, MAINTENANCE_PAGE, "text/html; charset=utf-8"),  # a maintenance page
    (200, b"\n<!DOCTYPE html><title>Request Rejected</title>", "text/plain"),  # a firewall's, mislabelled
    (409, b"<html><body>Conflict</body></html>", "text/html"),  # a proxy's 409 is no ERP saying it has the order
])
def test_a_web_page_answered_as_a_success_waits_for_an_operator(caplog, status, body, content_type):
    # given a proxy or firewall in front of the ERP answering every call with a page of its own
    pool = RecordingPool()
    with answering(status, body, {"Content-Type": content_type}) as url, caplog.at_level("ERROR"):
        # when an order is pushed, then it is not taken as imported: it waits, as for a wrong base URL
        with pytest.raises(ErpMisconfigured, match=r"answered \d+ with a web page, not the ERP's API") as caught:
            client_for(url, pool).import_order(ORDER)

    # and the ERP is not asked again at once (the page would answer the same), and an ALERT says what to check
    assert caught.value.status == status and len(pool.sent) == 1
    assert any("ALERT" in r.message and "ERP_BASE_URL" in r.message for r in caplog.records)


def test_the_probe_does_not_take_a_web_page_for_the_erp(caplog):
    # given a login proxy answering the snapshot endpoint with its page
    with answering(200, MAINTENANCE_PAGE, {"Content-Type": "text/html"}) as url, caplog.at_level("ERROR"):
        # when the ERP is probed (a yes would re-send every local_only order into the page)
        answered = client_for(url).probe()

    # then the ERP does not count as answering, and an ALERT says why
    assert answered is False
    assert any(r.message.startswith("ALERT ERP probe") and "web page" in r.message for r in caplog.records)


def test_the_probe_takes_an_erp_labelling_its_snapshot_html_for_the_erp():
    # given an ERP answering its snapshot with JSON labelled text/html (a legacy stack's default)
    with answering(200, b'[{"sku": "A", "qty": 1}]', {"Content-Type": "text/html"}) as url:
        # when it is probed, then it answers
        assert client_for(url).probe() is True


@pytest.mark.parametrize(("body", "content_type"), [
    (b"", "text/plain"), (b"OK", "text/plain"), (b' \n{"status": "<html>"}', "application/json"),
    # legacy stacks (PHP's default) label their yes text/html: no markup, no page
    (b"", "text/html"), (b"OK", "text/html; charset=UTF-8"), (b'{"status": "imported"}', "text/html")])
def test_an_answer_that_is_no_web_page_is_the_erps_yes(body, content_type):
    # given an ERP answering its yes with no body, a word, or JSON (spec 4 gives no body for a success)
    with answering(200, body, {"Content-Type": content_type}) as url:
        # when an order is pushed, then it is imported
        assert client_for(url).import_order(ORDER).status == 200


def test_unknown_sku_is_rejected(sandbox):
    order = decode_order(ORDER.to_json().replace(b"IPH15-128-BLU", b"NO-SUCH-SKU"))

    with pytest.raises(ErpRejected) as caught:
        client_for(sandbox.url).import_order(order)

    assert caught.value.status == 400 and "NO-SUCH-SKU" in caught.value.body


@pytest.mark.parametrize("mode, status", [("5xx", 503), ("5xx", 500), ("down", None)])
def test_an_erp_outage_is_retried_quickly_then_reported_unavailable(sandbox, mode, status):
    # given an ERP that fails every request
    sandbox.fault(mode, status=status or 503)
    pool = RecordingPool()

    # when an order is pushed
    with pytest.raises(ErpUnavailable) as caught:
        client_for(sandbox.url, pool, tries=3).import_order(ORDER)

    # then it was tried three times and the error keeps the answer's status
    assert len(pool.sent) == 3
    assert caught.value.status == status
    assert sandbox.orders() == []


def test_an_erp_asking_to_wait_is_not_asked_again_at_once(caplog):
    # given an ERP answering 429 with Retry-After: 120
    pool = RecordingPool()
    with answering(429, b'{"error": "slow down"}', {"Retry-After": "120"}) as url:
        # when an order is pushed with three quick tries, then it waits (pending) saying what the ERP asked
        with pytest.raises(ErpUnavailable, match=r"answered 429, asking us to wait 120 s") as caught:
            client_for(url, pool, tries=3).import_order(ORDER)

    # and the ERP was asked once, not three times within half a second
    assert caught.value.retry_after_s == 120 and len(pool.sent) == 1


def test_an_erp_asking_for_a_short_wait_gets_the_order_after_it_not_an_interval_later(sandbox):
    # given a rate-limited ERP answering 429 with Retry-After: 1, then taking orders again
    answers: list[tuple[int, float]] = []

    def ease_off(status: int) -> None:
        answers.append((status, time.monotonic()))
        sandbox.fault("none")

    sandbox.fault("5xx", status=429, retry_after_s=1)

    # when an order is pushed with three quick tries
    result = client_for(sandbox.url, RecordingPool(ease_off), tries=3).import_order(ORDER)

    # then the second try, a second later and no sooner, took it: it did not wait for the next interval
    [(refused, refused_at), (taken, taken_at)] = answers
    assert (refused, taken, result.status) == (429, 201, 201)
    assert taken_at - refused_at >= 1.0
    assert [order["order_id"] for order in sandbox.orders()] == ["ORD-WEB-1001"]


def test_a_blip_is_absorbed_by_the_quick_retries(sandbox):
    # given an ERP that fails the first request only
    calls = []

    def fail_once(status: int) -> None:
        calls.append(status)
        if len(calls) == 1:
            sandbox.fault("none")

    sandbox.fault("5xx")

    # when an order is pushed
    result = client_for(sandbox.url, RecordingPool(fail_once)).import_order(ORDER)

    # then the second try took it
    assert calls == [503, 201] and result.status == 201


def test_a_slow_erp_times_out_as_unavailable(sandbox):
    sandbox.fault("slow", delay_ms=1500)

    with pytest.raises(ErpUnavailable, match="in time"):
        client_for(sandbox.url, read_timeout_s=0.3, tries=1).import_order(ORDER)


def test_probe_tells_whether_the_erp_answers(sandbox):
    client = client_for(sandbox.url)
    assert client.probe() is True
    sandbox.fault("down")
    assert client.probe() is False
    sandbox.fault("5xx")
    assert client.probe() is False
    sandbox.fault("none")
    assert client.probe() is True


def test_the_probe_waits_for_the_snapshot_to_begin_as_long_as_the_sweep_would(sandbox):
    # given an ERP whose snapshot begins after 1.5 s, longer than an order's read timeout
    sandbox.fault("slow", delay_ms=1500)

    # then a probe allowed the sweep's read timeout sees the ERP answer; one allowed the orders' does not
    allowed_the_sweeps = ErpClient(erp_pool(sandbox.url), sandbox.url, TOKEN, connect_timeout_s=1.0,
                                   read_timeout_s=0.3, snapshot_read_timeout_s=10.0)
    assert allowed_the_sweeps.probe() is True
    assert client_for(sandbox.url, read_timeout_s=0.3).probe() is False


def test_a_probe_under_way_ends_when_probing_stops_and_no_probe_follows(sandbox, caplog):
    # given a probe waiting on an ERP that takes 30 s to begin its snapshot
    sandbox.fault("slow", delay_ms=30_000)
    client = ErpClient(erp_pool(sandbox.url), sandbox.url, TOKEN, connect_timeout_s=1.0, read_timeout_s=0.3,
                       snapshot_read_timeout_s=60.0)
    answers: list[bool | None] = []
    probing = threading.Thread(target=lambda: answers.append(client.probe()))
    probes_counted = probe_calls()
    probing.start()
    wait_for(lambda: sandbox.held() == 1)

    # when the worker stops probing (it is stopping)
    with caplog.at_level(logging.INFO):
        client.stop_probing()
        probing.join(timeout=10)

    # then the probe under way ends now, with no verdict on the ERP: none logged, none counted
    assert not probing.is_alive() and answers == [None]
    assert "not answering" not in caplog.text and probe_calls() == probes_counted
    # and a later one does not ask the ERP
    sandbox.fault("none")
    assert client.probe() is None


def test_a_probe_still_connecting_when_probing_stops_gives_no_verdict(caplog):
    # given an ERP whose listen backlog is full, so that a connect waits out its timeout
    with socket.socket() as erp:
        erp.bind(("127.0.0.1", 0))
        erp.listen(0)
        url = f"http://127.0.0.1:{erp.getsockname()[1]}"
        queued = [socket.socket() for _ in range(8)]
        for connection in queued:
            connection.setblocking(False)
            connection.connect_ex(erp.getsockname()[:2])
        time.sleep(0.2)
        client = ErpClient(erp_pool(url), url, TOKEN, connect_timeout_s=1.0, read_timeout_s=0.3,
                           snapshot_read_timeout_s=60.0)
        answers: list[bool | None] = []
        probing = threading.Thread(target=lambda: answers.append(client.probe()))
        probes_counted = probe_calls()

        # when the worker stops probing while the probe connects
        with caplog.at_level(logging.INFO):
            probing.start()
            time.sleep(0.3)
            client.stop_probing()
            probing.join(timeout=10)
        for connection in queued:
            connection.close()

    # then the failed connect is no verdict on the ERP: none logged, none counted
    assert answers == [None]
    assert "not answering" not in caplog.text and probe_calls() == probes_counted


def probe_calls() -> float:
    return sum(REGISTRY.get_sample_value("erp_sync_erp_calls_total", {"call": "probe", "result": result}) or 0.0
               for result in ("ok", "unavailable", "rejected", "misconfigured", "error"))


# Proxy and CA settings from the environment: read once when the client is made, as requests
# would read them per call. The sandbox stands in for a forward proxy: it serves the absolute
# URL a client sends to its proxy, so an order reaching it through an address that does not
# resolve went by the proxy.
UNRESOLVABLE_ERP = "http://erp.invalid:8080"


def test_a_proxy_set_in_the_environment_carries_the_orders(sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", sandbox.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = client_for(UNRESOLVABLE_ERP)

    result = client.import_order(ORDER)

    assert result.status == 201
    assert [order["idempotency_key"] for order in sandbox.orders()] == ["ORD-WEB-1001"]


def test_no_proxy_for_the_erps_host_goes_direct(sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", sandbox.url)
    monkeypatch.setenv("NO_PROXY", "erp.invalid")
    client = client_for(UNRESOLVABLE_ERP, tries=1)

    with pytest.raises(ErpUnavailable, match="cannot reach the ERP"):
        client.import_order(ORDER)
    assert sandbox.orders() == []


def test_a_ca_bundle_set_in_the_environment_is_trusted(tmp_path, monkeypatch):
    # given an ERP over TLS with a certificate of a private CA, named only by REQUESTS_CA_BUNDLE
    bundle = tmp_path / "ca.pem"
    context = server_context(bundle)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with running_sandbox(tmp_path, ssl_context=context) as erp:
        # when an order is pushed with no ERP_CA_BUNDLE
        result = client_for(erp.url).import_order(ORDER)

    # then the certificate was verified against that CA and the order went through
    assert result.status == 201


def test_an_answer_of_a_hundred_megabytes_is_not_read_beyond_its_excerpt():
    # given an ERP that takes the order and answers with 100 MB
    written: list[int] = []
    with answering(201, b"x" * 1_000_000, repeat=100, written=written) as url:
        # when the order is pushed
        result = client_for(url).import_order(ORDER)

    # then it is imported, with the answer's first 2,000 bytes kept, and the rest was never fetched
    assert result.status == 201 and result.body == "x" * 2000
    [sent] = wait_for(lambda: written)  # the server's thread sees the client gone a moment later
    assert sent < 100_000_000


# A byte every 0.2 s: each read well inside a read timeout of 1 s, so only the try's deadline
# (connect 1 s + read 1 s) ends the wait; the status line alone would take 4 s.
TRICKLE_S = 0.2


def trickling_client(url: str, ca_bundle: Path | None = None) -> ErpClient:
    return ErpClient(erp_pool(url, ca_bundle), url, TOKEN, connect_timeout_s=1.0, read_timeout_s=1.0, tries=1)


def test_an_answer_trickled_a_byte_at_a_time_is_no_answer_after_the_tries_deadline():
    # given an ERP taking the order but sending its answer a byte every 0.2 s
    with answering(201, b'{"status": "imported"}', trickle_s=TRICKLE_S) as url:
        # when an order is pushed, then the try ends at its deadline, as for an ERP that does not answer
        with pytest.raises(ErpUnavailable, match=r"did not answer within 2 s"):
            trickling_client(url).import_order(ORDER)


def test_once_the_status_is_in_by_the_deadline_it_decides_and_the_rest_of_the_body_is_not_waited_for():
    # given an ERP answering 201 at once and then trickling a body of 200 bytes (40 s)
    body = b"x" * 200
    with answering(201, body, trickle_s=TRICKLE_S, trickle_from="body") as url:
        # when an order is pushed
        result = trickling_client(url).import_order(ORDER)

    # then it is imported, with what of the body came by the deadline (a byte every 0.2 s for 2 s)
    assert result.status == 201 and result.body and body.startswith(result.body.encode())
    assert len(result.body) < len(body)


def test_a_refused_token_whose_answer_trickles_still_calls_for_an_operator():
    with answering(401, b"x" * 200, trickle_s=TRICKLE_S, trickle_from="body") as url:
        with pytest.raises(ErpMisconfigured, match="ERP_API_TOKEN") as refused:
            trickling_client(url).import_order(ORDER)
    assert refused.value.body and set(refused.value.body) == {"x"}  # what of its body came in time


def test_a_probe_answered_a_byte_at_a_time_is_no_answer(caplog):
    with answering(200, b"[]", trickle_s=TRICKLE_S) as url, caplog.at_level(logging.INFO):
        assert trickling_client(url).probe() is False
    assert "did not answer within 2 s" in caplog.text


def test_behind_an_https_proxy_an_https_erps_trickled_answer_ends_at_the_deadline(tmp_path, monkeypatch):
    # given an ERP over TLS behind a proxy over TLS (TLS within TLS), both of one private CA
    bundle = tmp_path / "ca.pem"
    context = server_context(bundle)
    with answering(201, b"{}", trickle_s=TRICKLE_S, tls=context) as url, connect_proxy(tls=context) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # when an order is pushed and the ERP trickles its answer, then the try ends at its deadline
        with pytest.raises(ErpUnavailable, match=r"did not answer within 2 s"):
            trickling_client(url, bundle).import_order(ORDER)


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http proxy", "https proxy"])
def test_a_proxy_trickling_its_answer_to_connect_ends_the_try_at_the_deadline(proxy_tls, tmp_path, monkeypatch):
    # given an ERP over TLS behind a proxy that answers CONNECT a byte every 0.2 s (12 s in all)
    bundle = tmp_path / "ca.pem"
    context = server_context(bundle)
    answered: list[int] = []
    with answering(201, b"{}", tls=context) as url, \
            connect_proxy(tls=context if proxy_tls else None, trickle_s=TRICKLE_S, answered=answered) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # when an order is pushed, then the try ends at its deadline, before the proxy has answered
        with pytest.raises(ErpUnavailable, match=r"did not answer within 2 s"):
            trickling_client(url, bundle).import_order(ORDER)
        [sent] = wait_for(lambda: answered)
    assert sent < len(ESTABLISHED)


def test_behind_an_https_proxy_an_https_erp_takes_the_order(tmp_path, monkeypatch):
    bundle = tmp_path / "ca.pem"
    context = server_context(bundle)
    with answering(201, b"{}", tls=context) as url, connect_proxy(tls=context) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert trickling_client(url, bundle).import_order(ORDER).status == 201
