"""`sandbox-erp --tls` as a process: HTTPS trusted through the CA it writes."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests

from tests.support import cli
from tests.support.sandbox import TOKEN, bearer


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


def test_beyond_loopback_with_the_default_token_it_refuses_to_start():
    # given no token set, as a careless deployment would leave it
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SANDBOX_ERP_", "ERP_"))}

    # when it is asked to listen on every address
    result = subprocess.run([*cli.command(), "sandbox-erp", "--host", "0.0.0.0", "--port", "0"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)

    # then it stops at once with one line naming the variable, and serves nothing
    assert result.returncode == 2, result.stderr
    assert "SANDBOX_ERP_API_TOKEN" in result.stderr
    assert "listening" not in result.stdout


def test_beyond_loopback_with_tokens_of_its_own_it_serves():
    env = {**os.environ, "SANDBOX_ERP_API_TOKEN": "a-token-of-this-deployment", "SANDBOX_ERP_WEBHOOK_URL": "",
           "SANDBOX_ERP_GROUPS": "0"}
    env.pop("SANDBOX_ERP_ADMIN_TOKEN", None)
    env.pop("SANDBOX_ERP_WEBHOOK_SECRET", None)
    env.pop("ERP_WEBHOOK_SECRET", None)
    process = subprocess.Popen([*cli.command(), "sandbox-erp", "--host", "0.0.0.0", "--port", "0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = re.search(r"listening on http://0\.0\.0\.0:(\d+)", process.stdout.readline()).group(1)
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/inventory/snapshot", timeout=10,
                              headers={"Authorization": "Bearer a-token-of-this-deployment"})
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.parametrize(("arguments", "exit_code", "line"), [
    (("/nonexistent.json",), 2, "erp-sync: send-webhook /nonexistent.json: No such file or directory"),
    (("/tmp",), 2, "erp-sync: send-webhook /tmp: Is a directory"),
    (("{payload}", "--url", "notaurl"), 2, "erp-sync: send-webhook --url: 'notaurl' is not an http(s) URL"),
    (("{payload}", "--url", "http://127.0.0.1:{port}/webhooks/erp"), 1,
     "erp-sync: send-webhook: nothing answered at http://127.0.0.1:{port}/webhooks/erp (ConnectionError: "),
])
def test_send_webhook_that_cannot_send_says_why_in_one_line(tmp_path, arguments, exit_code, line):
    # given a payload file, and a port where nothing listens
    payload = tmp_path / "event.json"
    payload.write_text("{}")
    port = cli.free_port()
    given = [argument.format(payload=payload, port=port) for argument in arguments]

    # when it is sent with a file, a URL or a server that will not do
    result = cli.run("send-webhook", *given, "--secret", "a-secret-of-this-test")

    # then one line says which and why, with the exit code of a bad argument (2) or an absent server (1)
    assert result.returncode == exit_code, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(line.format(port=port))


@pytest.mark.parametrize("verb", [("orders",), ("sale", "SKU-0000001-01")])
def test_an_admin_verb_without_a_running_sandbox_says_so_in_one_line(verb):
    # given no sandbox ERP at the URL
    url = f"http://127.0.0.1:{cli.free_port()}"

    # when the operator calls one of its admin verbs
    result = cli.run("sandbox-erp", "--url", url, *verb)

    # then one line names the URL, exit 1, no traceback
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stderr.startswith(f"erp-sync: the sandbox ERP at {url} is not reachable (ConnectionError: ")


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "http"])
def test_a_port_out_of_range_is_refused_by_the_command_line(port):
    # 99999 was taken modulo 65536: the sandbox listened on 34463, and clients at 99999 found nothing
    result = subprocess.run([*cli.command(), "sandbox-erp", "--port", port], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 2, result.stderr
    assert f"argument --port: must be a port from 0 (any free port) to 65535, not '{port}'" in result.stderr
    assert "listening" not in result.stdout
