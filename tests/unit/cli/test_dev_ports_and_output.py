"""`erp-sync dev` checks its ports first, naming the flag that moves one; its stream tags every line."""
from __future__ import annotations

import io
import socket

from erp_sync.cli.dev_env import Ports, port_problems
from erp_sync.cli.dev_processes import Output


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_taken_port_is_named_with_the_flag_that_moves_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        problems = port_problems(Ports(ingress=free_port(), api=port, sandbox=free_port()))

    assert problems == [f"port {port} (the storefront API) is taken: choose another with --api-port N"]


def test_one_port_given_twice_is_a_problem_and_free_ports_are_none():
    port = free_port()

    assert port_problems(Ports(ingress=port, api=free_port(), sandbox=port)) == [
        f"port {port} is given to the ingress and to the sandbox ERP: move one with --sandbox-port N"]
    assert port_problems(Ports(ingress=free_port(), api=free_port(), sandbox=None)) == []


def test_each_line_carries_its_process_tag_and_no_colour_codes():
    stream = io.StringIO()
    output = Output(stream)

    output.copy("sandbox", io.StringIO('\x1b[35m\x1b[1mPOST /api/v1/orders/import\x1b[0m" 201\nsecond line\n'))

    assert stream.getvalue() == 'sandbox  | POST /api/v1/orders/import" 201\nsandbox  | second line\n'
