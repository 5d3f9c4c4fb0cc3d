from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys

import pytest
import requests

from erp_sync.sandbox_erp.cli import add_sandbox_arguments, add_send_webhook_arguments, run_sandbox_command, \
    send_webhook, send_webhook_command
from erp_sync.sandbox_erp.settings import config_from_env
from tests.sandbox_erp.conftest import ADMIN_TOKEN, SECRET, TOKEN, bearer, serving
from tests.sandbox_erp.ingress_stub import IngressStub


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
        (("fault", "5xx", "--status", "502"), {"mode": "5xx", "status": 502, "delay_ms": 0, "reject_skus": []}),
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


def test_a_failing_verb_exits_non_zero(admin_env, capsys):
    assert run_sandbox_command(sandbox_args("sale", "NOPE")) == 1
    assert "unknown sku" in capsys.readouterr().out


@pytest.fixture
def stub():
    stub = IngressStub()
    with serving(stub.app()) as url:
        stub.url = f"{url}/webhooks/erp"
        yield stub


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


def test_config_from_env_falls_back_on_erp_sync_settings():
    config = config_from_env({"ERP_API_TOKEN": "t", "ERP_WEBHOOK_SECRET": "new,old", "INGRESS_PORT": "8123",
                              "SANDBOX_ERP_TIME_SCALE": "0.01", "SANDBOX_ERP_SNAPSHOT_FORMAT": "csv"})

    assert (config.api_token, config.webhook_secret) == ("t", "new")
    assert config.webhook_url == "http://127.0.0.1:8123/webhooks/erp"
    assert (config.time_scale, config.snapshot_format, config.generate_groups) == (0.01, "csv", 20)
    with pytest.raises(ValueError, match="SANDBOX_ERP_SNAPSHOT_FORMAT"):
        config_from_env({"SANDBOX_ERP_SNAPSHOT_FORMAT": "xml"})


def test_tls_serves_https_trusted_through_the_written_ca(tmp_path):
    # given `sandbox-erp --tls` writing its CA to a file
    ca = tmp_path / "ca.pem"
    env = {**os.environ, "SANDBOX_ERP_API_TOKEN": TOKEN, "SANDBOX_ERP_WEBHOOK_URL": ""}
    process = subprocess.Popen([sys.executable, "-m", "erp_sync.sandbox_erp", "--port", "0", "--tls", "--ca-file", str(ca)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"listening on (\S+)", process.stdout.readline()).group(1)
        assert str(ca) in process.stdout.readline()

        # then a client trusting that CA gets the snapshot over HTTPS, and one that does not is refused
        assert url.startswith("https://")
        response = requests.get(f"{url}/api/v1/inventory/snapshot", headers=bearer(), verify=str(ca))
        assert response.status_code == 200 and len(response.json()) == 60
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/api/v1/inventory/snapshot", headers=bearer())
    finally:
        process.terminate()
        process.wait(10)
