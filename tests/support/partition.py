"""A path to PostgreSQL that a test can black-hole: packets dropped without a word, as in a network partition.

A connection refused or reset is told at once; one whose packets vanish (a failed-over primary, a
dead router) is not, and TCP alone waits about 15 minutes before giving up. The path crosses into a
network namespace of its own (a veth pair) and back, through two forwarders, so that a blackhole
route to the namespace's address drops what the client sends and nothing else. Needs root and
iproute2, as the CI machine has (elsewhere the test is skipped, and fails under CI).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from sqlalchemy import make_url

from tests.support.service_fixtures import unavailable
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

FORWARD_PORT = 16433


@dataclass(frozen=True)
class Partitionable:
    database_url: str  # DATABASE_URL through the namespace
    far_address: str

    def cut(self) -> None:
        _ip("route", "add", "blackhole", f"{self.far_address}/32")

    def heal(self) -> None:
        _ip("route", "del", "blackhole", f"{self.far_address}/32", check=False)


@contextmanager
def partitionable(database_url: str) -> Iterator[Partitionable]:
    """DATABASE_URL by way of a namespace whose address `cut()` black-holes; all undone at the end."""
    tag = os.getpid() % 10_000
    namespace, near, far = f"erpcut{tag}", f"ec{tag}h", f"ec{tag}n"
    subnet = f"10.231.{tag % 250}"
    near_address, far_address = f"{subnet}.1", f"{subnet}.2"
    url = make_url(database_url)
    forwarder: subprocess.Popen[bytes] | None = None
    proxy: TcpProxy | None = None
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("a network namespace (root and iproute2)")
    _undo(namespace, near, far_address)  # what a run killed outright left behind
    try:
        _ip("netns", "add", namespace)
        _ip("link", "add", near, "type", "veth", "peer", "name", far)
        _ip("link", "set", far, "netns", namespace)
        _ip("addr", "add", f"{near_address}/30", "dev", near)
        _ip("link", "set", near, "up")
        _ip("-n", namespace, "addr", "add", f"{far_address}/30", "dev", far)
        _ip("-n", namespace, "link", "set", far, "up")
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432, listen_host=near_address)
        forwarder = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "tests.support.tcp_proxy",
             far_address, str(FORWARD_PORT), near_address, str(proxy.port)])
        wait_for(lambda: _answers(far_address), timeout=10)
        through = url.set(host=far_address, port=FORWARD_PORT).render_as_string(hide_password=False)
        yield Partitionable(through, far_address)
    finally:
        if forwarder is not None:
            forwarder.kill()
            forwarder.wait()
        if proxy is not None:
            proxy.close()
        _undo(namespace, near, far_address)


def _undo(namespace: str, near: str, far_address: str) -> None:
    _ip("route", "del", "blackhole", f"{far_address}/32", check=False)
    _ip("link", "del", near, check=False)
    _ip("netns", "del", namespace, check=False)


def _answers(address: str) -> bool:
    with suppress(OSError), socket.create_connection((address, FORWARD_PORT), timeout=1):
        return True
    return False


def _ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
