"""`sandbox-erp --keep-alive`: connections kept between calls, as a production ERP keeps them; its faults still show."""
from __future__ import annotations

import http.client
import json
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


@contextmanager
def serving_kept_alive(tmp_path: Path, port: int) -> Iterator[Sandbox]:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps(CATALOG))
    process = cli.start("sandbox-erp", "--keep-alive", "--port", str(port), SANDBOX_ERP_API_TOKEN=TOKEN,
                        SANDBOX_ERP_ADMIN_TOKEN=ADMIN_TOKEN, SANDBOX_ERP_CATALOG_FILE=str(catalog),
                        SANDBOX_ERP_GROUPS="0", SANDBOX_ERP_WEBHOOK_URL="")
    try:
        cli.wait_for_port(port, process)
        yield Sandbox(f"http://127.0.0.1:{port}", app=None)
    finally:
        cli.stop(process)


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


def connection_to(sandbox: Sandbox) -> http.client.HTTPConnection:
    """One connection that is never opened again once closed: a call after the server closed it fails."""
    connection = http.client.HTTPConnection(urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port, timeout=10)
    connection.connect()
    connection.auto_open = 0
    return connection


def test_calls_one_after_another_go_over_one_connection(kept_alive):
    # given one connection to the ERP
    connection = connection_to(kept_alive)

    # when three orders are imported over it, one after another
    answers = [import_order(connection, f"ORD-KEPT-{n}") for n in range(3)]

    # then each is taken, and the connection stays open for the next
    assert [answer.status for answer in answers] == [201, 201, 201]
    assert all(answer.getheader("Connection", "").lower() != "close" for answer in answers)
    assert connection.sock is not None
    assert kept_alive.stock(SKU) == 47


@pytest.mark.parametrize(("mode", "taken"), [("down", False), ("lost", True)])
def test_down_and_lost_answer_503_and_close_the_connection(kept_alive, mode, taken):
    # given the ERP down, or losing its answers after doing the work
    kept_alive.fault(mode)
    connection = connection_to(kept_alive)

    # when an order is imported
    answer = import_order(connection, "ORD-FAULT")

    # then the client gets no 201 and its connection is closed; the order is taken only when the answer was lost
    assert (answer.status, answer.getheader("Connection")) == (503, "close")
    assert connection.sock is None
    kept_alive.fault("none")
    assert [o["order_id"] for o in kept_alive.orders()] == (["ORD-FAULT"] if taken else [])
    assert kept_alive.stock(SKU) == (49 if taken else 50)


def test_keep_alive_over_tls_is_refused_at_start_naming_both_flags():
    result = cli.run("sandbox-erp", "--keep-alive", "--tls", "--port", str(cli.free_port()),
                     SANDBOX_ERP_API_TOKEN=TOKEN, SANDBOX_ERP_WEBHOOK_URL="")

    assert result.returncode == 2
    assert result.stderr.strip() == ("erp-sync: configuration error: --keep-alive serves plain HTTP only: "
                                     "leave out --tls or --keep-alive")


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
    with serving_kept_alive(tmp_path, port):
        before = [push(f"ORD-KEPT-{n}") for n in range(3)]
    with serving_kept_alive(tmp_path, port) as restarted:
        after = push("ORD-AFTER-RESTART")
        taken = [o["order_id"] for o in restarted.orders()]

    # then the three went over one connection kept open, and the one after the restart was taken at its first try
    assert [status for status, _ in before] == [201, 201, 201] and after[0] == 201
    [first_ports, *later_ports] = [ports for _, ports in before]
    assert len(first_ports) == 1 and later_ports == [first_ports, first_ports]
    assert taken == ["ORD-AFTER-RESTART"]


def kept_ports(pool: urllib3.PoolManager, url: str) -> set[int]:
    """The local ports of the connections the pool keeps open to `url`."""
    idle = pool.connection_from_url(url).pool.queue
    return {connection.sock.getsockname()[1] for connection in list(idle) if connection and connection.sock}
