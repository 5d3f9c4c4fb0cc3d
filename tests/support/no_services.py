"""The unit tier's guard: reaching PostgreSQL, RabbitMQ, an address beyond loopback or a new process fails the test.

Each attempt raises where it is made and is also noted, because code under test may catch the
error (pika reports any failed connect as the broker being away): the unit tier's conftest fails
the test at teardown when anything was noted.
"""
from __future__ import annotations

import ipaddress
import socket
import subprocess

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

SERVICE_PORTS = {5432: "PostgreSQL", 5672: "RabbitMQ", 15672: "RabbitMQ management"}


class ServiceReached(AssertionError):
    """A unit test reached a service; it belongs in tests/integration or tests/e2e."""


def guard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch sockets, libpq's connect and process creation for the rest of this test; return the list of attempts."""
    reached: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_pg_connect_gen = psycopg.Connection._connect_gen.__func__  # type: ignore[attr-defined]

    def refuse(what: str) -> None:
        reached.append(what)
        raise ServiceReached(f"a unit test {what}")

    def check_address(host: str, port: int) -> None:
        if port in SERVICE_PORTS:
            refuse(f"connected to {SERVICE_PORTS[port]} at {host}:{port}")
        try:
            loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            refuse(f"connected beyond loopback, to {host}:{port}")

    def connect(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            check_address(*address[:2])  # type: ignore[index]
        real_connect(sock, address)  # type: ignore[arg-type]

    def connect_ex(sock: socket.socket, address: object) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            check_address(*address[:2])  # type: ignore[index]
        return real_connect_ex(sock, address)  # type: ignore[arg-type]

    def pg_connect_gen(cls: type[psycopg.Connection], conninfo: str = "", **kwargs: object) -> object:
        # libpq opens its sockets in C, out of the socket patch's reach; this is one connection attempt.
        params = conninfo_to_dict(conninfo)
        check_address(str(params.get("hostaddr") or params.get("host") or "localhost"), int(str(params.get("port") or 5432)))
        return real_pg_connect_gen(cls, conninfo, **kwargs)

    def no_process(self: subprocess.Popen, args: object, *rest: object, **kwargs: object) -> None:
        refuse(f"started a process: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(psycopg.Connection, "_connect_gen", classmethod(pg_connect_gen))
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    return reached
