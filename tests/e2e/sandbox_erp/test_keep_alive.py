"""`sandbox-erp --keep-alive`: connections kept between calls, as a production ERP keeps them; its faults still show."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3

from erp_sync.shared.orders import OrderPlaced
from erp_sync.workers.erp_client import ErpClient, erp_pool
from tests.support import cli
from tests.support.orders import SKU, order, order_body
from tests.support.sandbox import ADMIN_TOKEN, CATALOG, TOKEN, Sandbox, bearer
from tests.support.waiting import wait_for


@contextmanager
def started_kept_alive(tmp_path: Path, port: int) -> Iterator[tuple[Sandbox, subprocess.Popen[str]]]:
    """`erp-sync sandbox-erp --keep-alive` on `port`, with the test catalog; its process too."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    process = cli.start("sandbox-erp", "--keep-alive", "--port", str(port), SANDBOX_ERP_API_TOKEN=TOKEN,
                        SANDBOX_ERP_ADMIN_TOKEN=ADMIN_TOKEN, SANDBOX_ERP_CATALOG_FILE=str(catalog),
                        SANDBOX_ERP_GROUPS="0", SANDBOX_ERP_WEBHOOK_URL="")
    try:
        cli.wait_for_port(port, process)
        yield Sandbox(f"http://127.0.0.1:{port}", app=None), process
    finally:
        cli.stop(process)


@contextmanager
def serving_kept_alive(tmp_path: Path, port: int) -> Iterator[Sandbox]:
    with started_kept_alive(tmp_path, port) as (sandbox, _):
        yield sandbox


@pytest.fixture
def kept_alive(tmp_path):
    with serving_kept_alive(tmp_path, cli.free_port()) as sandbox:
        yield sandbox


def import_order(connection: http.client.HTTPConnection, order_id: str) -> http.client.HTTPResponse:
    connection.request("POST", "/api/v1/orders/import", body=order_body(order_id, quantity=1),
                       headers=bearer() | {"Content-Type": "application/json", "Idempotency-Key": order_id})
    answer = connection.getresponse()
    answer.read()
    return answer


@contextmanager
def connection_to(sandbox: Sandbox) -> Iterator[http.client.HTTPConnection]:
    """One connection that is never opened again once closed: a call after the server closed it fails."""
    connection = http.client.HTTPConnection(urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port, timeout=10)
    connection.connect()
    connection.auto_open = 0
    try:
        yield connection
    finally:
        connection.close()


def test_calls_one_after_another_go_over_one_connection(kept_alive):
    # given one connection to the ERP
    with connection_to(kept_alive) as connection:
        # when three orders are imported over it, one after another
        answers = [import_order(connection, f"ORD-KEPT-{n}") for n in range(3)]

        # then each is taken, and the connection stays open for the next
        assert [answer.status for answer in answers] == [201, 201, 201]
        assert all(answer.getheader("Connection", "").lower() != "close" for answer in answers)
        assert connection.sock is not None
    assert kept_alive.stock(SKU) == 47


def everything_sent_back(sandbox: Sandbox, order_id: str, timeout_s: float = 5.0) -> bytes:
    """An import sent over a socket of its own, and all the server sends until it closes that socket."""
    body = order_body(order_id, quantity=1)
    head = (f"POST /api/v1/orders/import HTTP/1.1\r\nHost: erp\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    received = b""
    # A server keeping the connection open makes recv time out: the test then errs.
    with socket.create_connection((urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port),
                                  timeout=timeout_s) as sock:
        sock.sendall(head.encode() + body)
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize(("mode", "taken"), [("down", False), ("lost", True)])
def test_down_and_lost_answer_503_and_close_the_connection(kept_alive, mode, taken):
    # given the ERP down, or losing its answers after doing the work
    kept_alive.fault(mode)

    # when an order is imported
    answer = everything_sent_back(kept_alive, "ORD-FAULT")

    # then the client gets a 503 and then the end of the connection; the order is taken only when the answer was lost
    assert answer.startswith(b"HTTP/1.1 503") and b"\r\nconnection: close\r\n" in answer.lower()
    kept_alive.fault("none")
    assert [o["order_id"] for o in kept_alive.orders()] == (["ORD-FAULT"] if taken else [])
    assert kept_alive.stock(SKU) == (49 if taken else 50)


@pytest.mark.parametrize(("arguments", "refusal"), [
    (["--tls", "--port", "8099"], "--keep-alive serves plain HTTP only: leave out --tls or --keep-alive"),
    (["--port", "0"], "--keep-alive needs a port of its own: give --port a number above 0"),
], ids=["over TLS", "on port 0"])
def test_keep_alive_is_refused_at_start_over_tls_or_on_port_0(arguments, refusal):
    result = cli.run("sandbox-erp", "--keep-alive", *arguments, SANDBOX_ERP_API_TOKEN=TOKEN, SANDBOX_ERP_WEBHOOK_URL="")

    assert result.returncode == 2
    assert result.stderr.strip() == f"erp-sync: configuration error: {refusal}"


def test_the_erp_clients_pushes_share_a_kept_connection_and_one_the_erp_closed_is_not_an_outage(tmp_path):
    # given the orders worker's ERP client, allowed one try a push, and an ERP keeping connections alive
    port = cli.free_port()
    url = f"http://127.0.0.1:{port}"
    pool = erp_pool(url, size=2)
    client = ErpClient(pool, url, TOKEN, connect_timeout_s=1.0, read_timeout_s=5.0, tries=1)

    def push(order_id: str) -> tuple[int, set[int]]:
        status = client.import_order(OrderPlaced.model_validate(order(order_id, quantity=1))).status
        return status, kept_ports(pool, url)

    # when it pushes three orders, the ERP restarts (closing the kept connection under it), and it pushes one more
    try:
        with serving_kept_alive(tmp_path, port):
            before = [push(f"ORD-KEPT-{n}") for n in range(3)]
        with serving_kept_alive(tmp_path, port) as restarted:
            after = push("ORD-AFTER-RESTART")
            taken = [o["order_id"] for o in restarted.orders()]
    finally:
        pool.clear()

    # then the three went over one connection kept open, and the one after the restart was taken at its first try
    assert [status for status, _ in before] == [201, 201, 201] and after[0] == 201
    [first_ports, *later_ports] = [ports for _, ports in before]
    assert len(first_ports) == 1 and later_ports == [first_ports, first_ports]
    assert taken == ["ORD-AFTER-RESTART"]


def kept_ports(pool: urllib3.PoolManager, url: str) -> set[int]:
    """The local ports of the connections the pool keeps open to `url`."""
    idle = pool.connection_from_url(url).pool.queue
    return {connection.sock.getsockname()[1] for connection in list(idle) if connection and connection.sock}


def test_a_request_held_by_slow_does_not_keep_it_from_stopping(tmp_path):
    # given a kept-alive sandbox holding an import up for a minute
    with started_kept_alive(tmp_path, cli.free_port()) as (sandbox, process):
        sandbox.fault("slow", delay_ms=60_000)
        held = threading.Thread(target=everything_sent_back_or_nothing, args=(sandbox, "ORD-HELD"), daemon=True)
        held.start()
        wait_for(lambda: sandbox.held() == 1)
        workers = [int(pid) for pid in (Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split())]

        # when it is told to stop
        process.terminate()

        # then it stops within granian's kill timeout, its worker process with it
        assert process.wait(timeout=20) == 0
        assert workers and not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


def everything_sent_back_or_nothing(sandbox: Sandbox, order_id: str) -> bytes:
    try:
        return everything_sent_back(sandbox, order_id, timeout_s=90.0)
    except OSError:
        return b""
