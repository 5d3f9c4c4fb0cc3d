"""The storefront API reads no more of a request's body than its one form needs.

Bodies are read before the token is checked: a client without a token announcing megabytes must
get its answer at once, not hold the API's memory (or a connection) while it sends them.
"""
from __future__ import annotations

import socket

import pytest
import requests

from erp_sync.ingress.storefront import MAX_BODY_BYTES
from tests.support import cli
from tests.support.settings import API_TOKEN

READ_TIMEOUT_S = 30.0
CONSOLE_TOKEN = "console-token-for-the-body-test"
ANSWER_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def api(migrated_database_url, topology):
    with cli.serving("api", DATABASE_URL=migrated_database_url, AMQP_URL=topology, STOREFRONT_API_TOKEN=API_TOKEN,
                     CONSOLE_TOKEN=CONSOLE_TOKEN, API_WORKERS="1", HTTP_READ_TIMEOUT_S=str(READ_TIMEOUT_S)) as port:
        yield port


def status_of_head_only(port: int, request_head: bytes) -> bytes:
    """The status line the API answers to a request whose body never comes."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN_S) as connection:
        connection.sendall(request_head)
        return connection.recv(4096).split(b"\r\n", 1)[0]


def test_a_read_without_a_token_announcing_megabytes_is_refused_without_waiting_for_them(api):
    # when a client without a token announces a 5 MiB body and sends none of it
    status = status_of_head_only(
        api, b"GET /api/v1/inventory/SKU-1 HTTP/1.1\r\nHost: api\r\nContent-Length: 5242880\r\n\r\n")

    # then it is refused now, not once the body would have come in (or the read timeout)
    assert status == b"HTTP/1.1 401 Unauthorized"


def test_a_console_form_larger_than_the_api_takes_is_refused_as_too_large(api):
    answer = requests.post(f"http://127.0.0.1:{api}/console/replay", data={"id": "x" * MAX_BODY_BYTES},
                           headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"}, timeout=10)

    assert answer.status_code == 413 and answer.headers["Content-Type"].startswith("application/json")
