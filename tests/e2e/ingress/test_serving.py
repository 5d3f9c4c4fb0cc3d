from __future__ import annotations

import gzip
import signal
import socket
from pathlib import Path

import pytest
import requests
import trustme

from tests.support import cli
from tests.support.amqp import drain
from tests.support.deploy_files import load_script
from tests.support.settings import WEBHOOK_SECRET
from tests.support.factories import encode, inventory_event, signed_headers
from tests.support.waiting import wait_for


@pytest.fixture
def tls_files(tmp_path):
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    for pem in certificate.cert_chain_pems[1:]:
        pem.write_to_path(str(cert), append=True)
    certificate.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return cert, key, ca


def test_the_ingress_serves_signed_webhooks_over_tls(migrated_database_url, broker, tls_files, monkeypatch):
    # given `erp-sync ingress` with a certificate and key
    cert, key, ca = tls_files
    port = cli.free_port()
    process = cli.start(
        "ingress", "--port", str(port),
        DATABASE_URL=migrated_database_url, AMQP_URL=broker, ERP_WEBHOOK_SECRET=WEBHOOK_SECRET,
        INGRESS_TLS_CERTFILE=str(cert), INGRESS_TLS_KEYFILE=str(key), INGRESS_WORKERS="2", INGRESS_THREADS="4",
    )
    try:
        cli.wait_for_port(port, process)
        event = inventory_event()
        body = encode(event)

        # when the ERP posts a signed event over HTTPS, trusting only our CA
        response = requests.post(f"https://127.0.0.1:{port}/webhooks/erp", data=body,
                                 headers=signed_headers(body, WEBHOOK_SECRET), verify=str(ca), timeout=10)
        plain = requests.Session()
        with pytest.raises(requests.exceptions.SSLError):
            plain.get(f"https://127.0.0.1:{port}/healthz", timeout=10)  # not trusted without our CA
        metrics = requests.get(f"https://127.0.0.1:{port}/metrics", verify=str(ca), timeout=10).text
        # and the image's HEALTHCHECK, reading the container's command and settings, asks it over TLS
        monkeypatch.setenv("INGRESS_TLS_CERTFILE", str(cert))
        healthy = load_script("healthcheck.py").main(Path(f"/proc/{process.pid}/cmdline"))
    finally:
        output = cli.stop(process)

    # then it is accepted over TLS and on the queue
    assert response.status_code == 202, output
    assert [m.body for m in drain(broker, "erp-sync.inventory")] == [body]
    assert 'erp_sync_webhooks_accepted_total{event_type="inventory.change"}' in metrics
    assert healthy == 0


def test_ingress_without_a_secret_stops_at_start_naming_it(migrated_database_url, broker):
    result = cli.run("ingress", DATABASE_URL=migrated_database_url, AMQP_URL=broker)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "erp-sync: configuration error: ERP_WEBHOOK_SECRET is not set: the ingress cannot verify webhooks"
    ]


def test_sigterm_lets_a_webhook_under_way_finish_then_stops(migrated_database_url, broker):
    # given `erp-sync ingress` in the middle of receiving a signed webhook
    port = cli.free_port()
    process = cli.start("ingress", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="1")
    try:
        cli.wait_for_port(port, process)
        body = encode(inventory_event())
        head = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body, WEBHOOK_SECRET).items())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /webhooks/erp HTTP/1.1\r\nHost: erp\r\nContent-Length: {len(body)}\r\n{head}\r\n"
                         .encode() + body[:10])

            # when it is told to stop, and only then the rest of the body arrives
            process.send_signal(signal.SIGTERM)
            wait_for(lambda: "Stopping worker" in cli.output_of(process))
            sock.sendall(body[10:])
            answer = sock.makefile("rb").readline()

        # then the webhook is answered and stored, and the server exits cleanly
        assert answer.startswith(b"HTTP/1.1 202"), answer
        assert process.wait(timeout=30) == 0, cli.output_of(process)
    finally:
        output = cli.stop(process)
    assert [m.body for m in drain(broker, "erp-sync.inventory")] == [body], output


def test_a_signed_chunked_body_over_the_limit_is_413_without_being_read_whole(migrated_database_url, broker):
    # given `erp-sync ingress` taking bodies of up to 1 MiB
    port = cli.free_port()
    process = cli.start("ingress", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="1", WEBHOOK_MAX_BODY_BYTES=str(2**20))
    try:
        cli.wait_for_port(port, process)
        body = b" " * (6 * 2**20)
        head = "".join(f"{name}: {value}\r\n" for name, value in signed_headers(body, WEBHOOK_SECRET).items())

        # when a correctly signed 6 MiB body comes chunked, without Content-Length
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"POST /webhooks/erp HTTP/1.1\r\nHost: erp\r\nTransfer-Encoding: chunked\r\n{head}\r\n".encode())
            try:
                for start in range(0, len(body), 2**16):
                    sock.sendall(b"10000\r\n" + body[start:start + 2**16] + b"\r\n")
            except OSError:
                pass  # the server stopped reading: what this test is about
            answer = sock.makefile("rb").readline()
    finally:
        cli.stop(process)

    # then the answer is 413 (not 401 for a signature over a cut body), and nothing is queued
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert drain(broker, "erp-sync.inventory") == []


def test_the_doors_own_answers_name_what_to_fix(migrated_database_url, broker):
    # given `erp-sync ingress` taking bodies of up to 4 KiB, answering webhooks on its event loop
    port = cli.free_port()
    process = cli.start("ingress", "--port", str(port), DATABASE_URL=migrated_database_url, AMQP_URL=broker,
                        ERP_WEBHOOK_SECRET=WEBHOOK_SECRET, INGRESS_WORKERS="1", WEBHOOK_MAX_BODY_BYTES="4096")
    url = f"http://127.0.0.1:{port}/webhooks/erp"
    try:
        cli.wait_for_port(port, process)
        # when the ERP sends a gzipped event, signed as sent, then one over the limit, then one unsigned
        gzipped = gzip.compress(encode(inventory_event()))
        compressed = requests.post(url, data=gzipped, timeout=10,
                                   headers={**signed_headers(gzipped, WEBHOOK_SECRET), "Content-Encoding": "gzip"})
        large = encode(inventory_event(reason="x" * 5000))
        too_large = requests.post(url, data=large, headers=signed_headers(large, WEBHOOK_SECRET), timeout=10)
        unsigned = requests.post(url, data=encode(inventory_event()), timeout=10,
                                 headers={"Content-Type": "application/json"})
    finally:
        output = cli.stop(process)

    # then each answer says what to change, and nothing is queued
    assert (compressed.status_code, compressed.json()["error"]) == (
        415, "Content-Encoding 'gzip' is not accepted: send the body uncompressed, signed as sent"), output
    assert too_large.status_code == 413
    assert too_large.json()["error"].startswith("the body is over the limit of 4096 bytes (WEBHOOK_MAX_BODY_BYTES)")
    assert unsigned.status_code == 401
    assert unsigned.json()["error"].startswith("missing X-ERP-Signature")
    assert drain(broker, "erp-sync.inventory") == []
