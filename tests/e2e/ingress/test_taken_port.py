"""A server started on a port another server listens on stops at once, instead of sharing it."""
from __future__ import annotations

import socket

import pytest

from tests.support import cli

SETTINGS = {"AMQP_URL": "amqp://guest:guest@127.0.0.1:9/%2F", "DATABASE_URL": "postgresql://postgres@127.0.0.1:9/x",
            "ERP_WEBHOOK_SECRET": "a-secret-of-this-test-run", "STOREFRONT_API_TOKEN": "a-token-of-this-test-run"}


@pytest.mark.parametrize("command, setting", [("ingress", "INGRESS_PORT"), ("api", "API_PORT")])
def test_a_port_another_server_listens_on_stops_the_server_with_one_line(command, setting):
    # given a port taken by a listener that lets others share it, as granian's own listeners do
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when a second server is started there by mistake
        result = cli.run(command, "--port", str(port), timeout=30, **SETTINGS)

    # then it does not share the port: it stops, saying which and how to move it
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"erp-sync: configuration error: port {port} on 127.0.0.1 is taken: choose another with --port N or {setting}"]


@pytest.mark.parametrize("command", ["ingress", "api", "dev"])
@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_a_port_out_of_range_is_refused_by_the_command_line(command, port):
    result = cli.run(command, "--port", port, timeout=30, **SETTINGS)

    assert result.returncode == 2, result.stderr
    assert f"argument --port: must be a port from 1 to 65535, not '{port}'" in result.stderr
    assert "Traceback" not in result.stderr
