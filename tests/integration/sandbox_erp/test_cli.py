from __future__ import annotations

import argparse
import hashlib
import hmac
import json

import pytest

from erp_sync.sandbox_erp.cli import add_sandbox_arguments, add_send_webhook_arguments, run_sandbox_command, \
    send_webhook, send_webhook_command
from tests.support.sandbox import ADMIN_TOKEN, SECRET


def sandbox_args(*argv):
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def admin_env(monkeypatch, live):
    monkeypatch.setenv("SANDBOX_ERP_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("SANDBOX_ERP_URL", live)
    return live


@pytest.mark.parametrize(
    "argv, check",
    [
        (("sale", "IPH15-128-BLK", "--quantity", "3"), {"sku": "IPH15-128-BLK", "qty": 47}),
        (("receipt", "IPH15-128-BLU", "--quantity", "8"), {"sku": "IPH15-128-BLU", "qty": 50}),
        (("adjust", "IPH15-128-BLU", "--set", "5"), {"sku": "IPH15-128-BLU", "qty": 5}),
        (("adjust", "IPH15-128-BLU", "--change", "-2"), {"sku": "IPH15-128-BLU", "qty": 40}),
        (("fault", "5xx", "--status", "502"), {"mode": "5xx", "status": 502, "retry_after_s": None, "delay_ms": 0,
                                               "reject_skus": [], "slow_skus": []}),
        (("fault", "5xx", "--status", "429", "--retry-after", "2"),
         {"mode": "5xx", "status": 429, "retry_after_s": 2, "delay_ms": 0, "reject_skus": [], "slow_skus": []}),
        (("fault", "slow", "--delay-ms", "500", "--only-sku", "IPH15-128-BLK"),
         {"mode": "slow", "status": 503, "retry_after_s": None, "delay_ms": 500, "reject_skus": [],
          "slow_skus": ["IPH15-128-BLK"]}),
        (("faults",), {"mode": "none", "status": 503, "retry_after_s": None, "delay_ms": 0, "reject_skus": [],
                       "slow_skus": [], "held": 0}),
        (("orders",), []),
        (("alerts",), []),
    ],
)
def test_admin_verbs_call_the_running_sandbox(admin_env, capsys, argv, check):
    assert run_sandbox_command(sandbox_args(*argv)) == 0

    assert json.loads(capsys.readouterr().out) == check


def test_price_and_new_product_verbs(admin_env, capsys):
    assert run_sandbox_command(sandbox_args("price", "IPH15-128-BLK", "1999.99", "--mrp", "2499")) == 0
    group = json.loads(capsys.readouterr().out)
    assert group["variants"][0]["price"] == 1999.99

    assert run_sandbox_command(sandbox_args("new-product")) == 0
    assert json.loads(capsys.readouterr().out)["product_group_id"].startswith("PG-")


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_new_product_file_that_is_no_json_object_is_one_line(admin_env, capsys, tmp_path, content):
    path = tmp_path / "product.json"
    path.write_bytes(content)

    assert run_sandbox_command(sandbox_args("new-product", "--file", str(path))) == 2

    assert capsys.readouterr().err.startswith(f"erp-sync: --file {path}: not a JSON object (")


def test_a_failing_verb_exits_non_zero(admin_env, capsys):
    assert run_sandbox_command(sandbox_args("sale", "NOPE")) == 1
    assert "unknown sku" in capsys.readouterr().out


def test_send_webhook_signs_the_file_byte_for_byte(tmp_path, stub):
    payload = tmp_path / "event.json"
    payload.write_bytes(b'{"event_id": "evt_1",  "event_type": "inventory.change"}\n')

    status, body = send_webhook(payload, stub.url, SECRET)

    assert status == 202 and "stub" in body
    [arrival] = stub.arrivals
    assert arrival.body == payload.read_bytes()
    assert arrival.headers["X-Erp-Signature"] == hmac.new(SECRET.encode(), arrival.body, hashlib.sha256).hexdigest()


def test_send_webhook_command_prints_status_and_body(tmp_path, stub, monkeypatch, capsys):
    monkeypatch.setenv("ERP_WEBHOOK_SECRET", f"{SECRET},older-secret")
    payload = tmp_path / "event.json"
    payload.write_text("{}")
    parser = argparse.ArgumentParser()
    add_send_webhook_arguments(parser)

    assert send_webhook_command(parser.parse_args([str(payload), "--url", stub.url])) == 0

    assert capsys.readouterr().out.startswith("202\n")
    assert stub.arrivals[0].headers["X-Erp-Signature"] == hmac.new(SECRET.encode(), b"{}", hashlib.sha256).hexdigest()
