"""Running the `erp-sync` console script as a user would."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests


def command() -> list[str]:
    script = Path(sys.executable).parent / "erp-sync"
    return [str(script)] if script.exists() else [sys.executable, "-m", "erp_sync"]


def clean_env(**variables: str) -> dict[str, str]:
    """The environment minus every erp-sync setting, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ERP_", "INGRESS_", "WEBHOOK_"))}
    env.pop("DATABASE_URL", None)
    env.pop("AMQP_URL", None)
    # Not the `.erp-sync.env` a developer's `make run` left in the repository: only what the test sets.
    env["ERP_SYNC_ENV_FILE"] = ""
    env.update(variables)
    return env


def run(*args: str, timeout: float = 120, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], env=clean_env(**variables), capture_output=True, text=True,
                          timeout=timeout, check=False)


def start(*args: str, cwd: Path | None = None, **variables: str) -> subprocess.Popen[str]:
    return start_logged([*command(), *args], env=clean_env(**variables), cwd=cwd)


def start_logged(argv: list[str], env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> subprocess.Popen[str]:
    """`argv` started with its output logged, for `output_of` to read while it runs."""
    # Output goes to a file, not a pipe: nobody reads a pipe while the process runs, and a chatty
    # process (dev's six children) would block once it filled.
    _let_children_see_ctrl_c()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    _logs[process.pid] = log
    return process


_logs: dict[int, IO[bytes]] = {}


def _let_children_see_ctrl_c() -> None:
    """A run started in the background by a script ignores SIGINT, and so would every command it
    starts: the Ctrl-C a test sends would go unseen. An ignored signal stays ignored across exec; a
    handled one starts at its default there."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def output_of(process: subprocess.Popen[str]) -> str:
    log = _logs.get(process.pid)
    if log is None:
        return ""
    # pread, not seek and read: the process writes through the same open file and so shares its
    # offset; a seek to 0 here would have its next line overwrite the start of the log.
    descriptor = log.fileno()
    written = os.pread(descriptor, os.fstat(descriptor).st_size, 0)
    return written.decode(errors="replace")


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0) there can be
# taken, before the server binds it, as the local port of any outgoing connection (a worker's to
# PostgreSQL), and `erp-sync dev` then refused its API port as taken.
LISTENING_PORTS = range(20_000, 32_768)


def free_port() -> int:
    """A port nothing listens on, that no outgoing connection will take meanwhile."""
    while True:
        port = random.choice(LISTENING_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_for_port(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early:\n{output_of(process)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on port {port} within {timeout} s")


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output = output_of(process)
    log = _logs.pop(process.pid, None)
    if log is not None:
        log.close()
    return output


@contextmanager
def serving(command: str, **variables: str) -> Iterator[int]:
    """`erp-sync <command> --port N` started and answering /healthz; yields N, and stops it at the end."""
    port = free_port()
    process = start(command, "--port", str(port), **variables)
    try:
        wait_for_port(port, process)
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).raise_for_status()
        yield port
    finally:
        stop(process)
