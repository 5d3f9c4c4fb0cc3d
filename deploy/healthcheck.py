"""The image's HEALTHCHECK: GET /healthz of the process the container runs; no curl in the image.

The check runs beside the container's main process (PID 1, `erp-sync ...`) and reads its command
line to know what to ask: the ingress and the API answer /healthz on their port; the sandbox ERP
has no /healthz, so any HTTP answer from it will do; a worker answers /healthz on METRICS_PORT when
set; without it, a worker or the migration serves no HTTP, so its container is healthy while its
process runs (Docker restarts it when it exits). An ingress given INGRESS_TLS_CERTFILE serves HTTPS
alone: it is asked over TLS, its certificate unchecked (it names the ERP's host, not 127.0.0.1).
Exit 0 healthy, 1 not.
"""
from __future__ import annotations

import http.client
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

PORTS = {"ingress": ("INGRESS_PORT", 8000), "api": ("API_PORT", 8001), "sandbox-erp": (None, 8900)}
# The process serves HTTPS alone when this is set.
TLS_SETTINGS = {"ingress": "INGRESS_TLS_CERTFILE"}
# Processes without /healthz: answering at all is their sign of life.
ANY_ANSWER = frozenset({"sandbox-erp"})


def main_command(cmdline: Path = Path("/proc/1/cmdline")) -> list[str]:
    """PID 1's arguments after the `erp-sync` script (empty when it is not erp-sync)."""
    arguments = [part.decode() for part in cmdline.read_bytes().split(b"\0") if part]
    for index, argument in enumerate(arguments):
        if argument.endswith("erp-sync"):
            return arguments[index + 1:]
    return []


def health_url(command: list[str], environ: dict[str, str]) -> str | None:
    """Where the process answers /healthz, or None for a process that serves no HTTP."""
    if command[:1] == ["worker"] and int(environ.get("METRICS_PORT") or 0):
        # A worker with METRICS_PORT answers 503 while its consumers are cut off from RabbitMQ.
        return f"http://127.0.0.1:{int(environ['METRICS_PORT'])}/healthz"
    if not command or command[0] not in PORTS:
        return None
    variable, port = PORTS[command[0]]
    if "--port" in command[:-1]:
        port = int(command[command.index("--port") + 1])
    elif variable and environ.get(variable):
        port = int(environ[variable])
    scheme = "https" if environ.get(TLS_SETTINGS.get(command[0], "")) else "http"
    return f"{scheme}://127.0.0.1:{port}/healthz"


def main(cmdline: Path = Path("/proc/1/cmdline")) -> int:
    command = main_command(cmdline)
    url = health_url(command, dict(os.environ))
    if url is None:
        return 0
    # Loopback: the certificate names the host the ERP calls, which 127.0.0.1 is not.
    unchecked = ssl._create_unverified_context()  # noqa: S323
    try:
        with urllib.request.urlopen(url, timeout=3, context=unchecked) as response:  # noqa: S310 (loopback)
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:
        return 0 if command[0] in ANY_ANSWER else _unhealthy(url, exc)
    except (OSError, http.client.HTTPException) as exc:
        # HTTPException: an answer that is no HTTP (a TLS listener asked in plain HTTP, say).
        return _unhealthy(url, exc)


def _unhealthy(url: str, exc: OSError | http.client.HTTPException) -> int:
    print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
