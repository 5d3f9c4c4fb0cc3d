"""`erp-sync dev`: every process of erp-sync on this machine, started and stopped together."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from types import FrameType

logger = logging.getLogger(__name__)

ROLES: tuple[tuple[str, ...], ...] = (
    ("ingress",),
    ("worker", "catalog"),
    ("worker", "inventory"),
    ("worker", "media"),
)


def _start(role: tuple[str, ...], port: int | None) -> subprocess.Popen[bytes]:
    arguments = [sys.executable, "-m", "shared.cli", *role]
    if role == ("ingress",) and port is not None:
        arguments += ["--port", str(port)]
    logger.info("starting %s", " ".join(role))
    return subprocess.Popen(arguments)


def run_all(port: int | None = None, poll_s: float = 0.5) -> int:
    """Run every role until one exits or a signal arrives; then stop the rest. Returns the exit code."""
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        logger.info("signal %d: stopping every process", signum)
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children = {role: _start(role, port) for role in ROLES}
    exit_code = 0
    while not stopping:
        for role, child in children.items():
            if child.poll() is not None:
                logger.error("%s exited with %d; stopping the others", " ".join(role), child.returncode)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(poll_s)
    _stop(children.values())
    return exit_code


def _stop(children: Iterable[subprocess.Popen[bytes]]) -> None:
    processes = list(children)
    for child in processes:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for child in processes:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
