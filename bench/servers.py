"""Services in process groups of their own, stopped with every process they forked."""
from __future__ import annotations

import ctypes
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from erp_sync.shared.settings import Settings

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
# The server gives requests under way 20 s after SIGTERM (ingress/serve.py); after that only SIGKILL is left.
STOP_TIMEOUT_S = 25.0
PR_SET_PDEATHSIG = 1


class ServerFailed(RuntimeError):
    """A server did not start, or died; the message ends with its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def erp_sync(*args: str) -> list[str]:
    """`erp-sync <args>` from this virtualenv."""
    script = Path(sys.executable).parent / "erp-sync"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "erp_sync", *args]


def ingress_command(port: int) -> list[str]:
    """`erp-sync ingress`, as production runs it."""
    return erp_sync("ingress", "--port", str(port))


def api_command(port: int) -> list[str]:
    """`erp-sync api`, the storefront's read API, as production runs it."""
    return erp_sync("api", "--port", str(port))


def worker_command(name: str) -> list[str]:
    """`erp-sync worker <name>`, as production runs it."""
    return erp_sync("worker", name)


def server_env(settings: Settings, secret: str, metrics_dir: Path) -> dict[str, str]:
    """The environment of every service a run starts: its vhost, its database, its secret."""
    metrics_dir.mkdir()
    return os.environ | {
        "DATABASE_URL": settings.database_url,
        "AMQP_URL": settings.amqp_url,
        "ERP_WEBHOOK_SECRET": secret,
        # The benchmark's reads carry the same random value as the storefront's token.
        "STOREFRONT_API_TOKEN": secret,
        # serve() would otherwise leave a fresh temporary folder behind on every start.
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """A worker's environment as production gives it: without the web servers' PROMETHEUS_MULTIPROC_DIR.

    A worker serves its own registry; with the variable set, prometheus_client would write every
    count to a shared file and check the process id first, a cost no deployed worker pays.
    """
    return {key: value for key, value in env.items() if key != "PROMETHEUS_MULTIPROC_DIR"}


def image_server_command(port: int) -> list[str]:
    """The test image server (tests/support/image_server.py) in a process of its own."""
    return [sys.executable, "-m", "tests.support.image_server", "--port", str(port)]


def bare_command(port: int) -> list[str]:
    return [sys.executable, "-m", "bench.bare", "--port", str(port)]


def gunicorn_bare_command(port: int) -> list[str]:
    """The bare endpoint under `gunicorn --worker-class sync -w 2`: issue 19's yardstick for the door."""
    return [sys.executable, "-m", "gunicorn", "--worker-class", "sync", "-w", "2", "--bind", f"{HOST}:{port}",
            "--log-level", "warning", "bench.bare:create_bare_app()"]


def _die_with_parent() -> None:
    # A benchmark killed with SIGKILL cleans nothing up; its servers must not outlive it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], port: int,
            log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command`, wait until it answers HTTP on `port`, and stop it on the way out."""
    log_path = log_dir / f"{name}.log"
    process = spawn(command, env, log_path)
    try:
        wait_until_answering(process, port, log_path)
        yield process
        if process.poll() is not None:
            raise ServerFailed(f"{name} died during the run:\n{log_tail(log_path)}")
    finally:
        stop(process)


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `command` in a new process group that dies with this process, its output in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent,
        )


def wait_until_answering(process: subprocess.Popen[bytes], port: int, log_path: Path, name: str = "server") -> None:
    """Until `process` answers GET /healthz on `port`; ServerFailed if it exits or stays silent."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode} at its start (log {log_path}):\n"
                               f"{log_tail(log_path)}")
        connection = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise ServerFailed(f"{name}: nothing answered on port {port} within {START_TIMEOUT_S} s:\n{log_tail(log_path)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after STOP_TIMEOUT_S."""
    if process.poll() is not None:
        return
    # The whole group: master and workers stop together, even if the master is wedged.
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
