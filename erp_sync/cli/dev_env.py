"""What `erp-sync dev` hands its processes: ports checked, secrets made or kept, dev's short intervals."""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from erp_sync.shared.ports import why_unusable

SECRETS = ("ERP_WEBHOOK_SECRET", "ERP_API_TOKEN", "STOREFRONT_API_TOKEN", "CONSOLE_PASSWORD")
CONSOLE_USER = "operator"
SANDBOX_STATE_FILE = ".erp-sync-sandbox.sqlite"

# Short intervals, so a newcomer sees retries happen: an order held while the ERP was down goes out
# seconds after it is back, and the sandbox's failed webhooks are retried within seconds too.
DEV_DEFAULTS = {
    "ORDER_RETRY_INTERVAL_S": "10",
    "ERP_PROBE_INTERVAL_S": "5",
    "SANDBOX_ERP_TIME_SCALE": "0.01",
    "INGRESS_WORKERS": "1",
    "API_WORKERS": "1",
}


@dataclass(frozen=True)
class Ports:
    """Where `dev` serves the ERP's door, the storefront's API and (unless None) the sandbox ERP."""

    ingress: int
    api: int
    sandbox: int | None = 8900

    def flags(self) -> list[tuple[int, str, str]]:
        """(port, what listens there, the flag that moves it)."""
        found = [(self.ingress, "the ingress", "--port"), (self.api, "the storefront API", "--api-port")]
        if self.sandbox is not None:
            found.append((self.sandbox, "the sandbox ERP", "--sandbox-port"))
        return found


def port_problems(ports: Ports, host: str = "127.0.0.1") -> list[str]:
    """One line for each port that is taken (or given twice), naming the flag that moves it."""
    problems: list[str] = []
    seen: dict[int, str] = {}
    for port, what, flag in ports.flags():
        if port in seen:
            problems.append(f"port {port} is given to {seen[port]} and to {what}: move one with {flag} N")
            continue
        seen[port] = what
        if (why := why_unusable(host, port)) is not None:
            problems.append(f"port {port} ({what}) {why}: choose another with {flag} N")
    return problems


def dev_environment(ports: Ports, environ: Mapping[str, str] | None = None,
                    remembered: Mapping[str, str] | None = None,
                    state_dir: Path | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of every child, and the secrets made for this run (neither set nor remembered).

    The sandbox and erp-sync are pointed at each other and share one webhook secret and one ERP
    token: the sandbox falls back on ERP_WEBHOOK_SECRET and ERP_API_TOKEN, and its own variables,
    when set, are taken for erp-sync's. `remembered` holds the secrets of the last run's env file,
    so the sandbox's kept state and a second shell's exports stay valid.
    """
    env = dict(os.environ if environ is None else environ)
    env["ERP_SYNC_ENV_FILE"] = ""  # the children get everything from dev, nothing from a file
    env["PYTHONUNBUFFERED"] = "1"  # their lines reach dev as they are written
    env.setdefault("SANDBOX_ERP_WEBHOOK_URL", f"http://127.0.0.1:{ports.ingress}/webhooks/erp")
    for name, value in DEV_DEFAULTS.items():
        env.setdefault(name, value)
    wanted = ["ERP_WEBHOOK_SECRET", "STOREFRONT_API_TOKEN"]
    if not env.get("CONSOLE_TOKEN"):  # the operator console opens with a user and password made here
        env.setdefault("CONSOLE_USER", CONSOLE_USER)
        wanted.append("CONSOLE_PASSWORD")
    if ports.sandbox is not None:
        env.setdefault("ERP_BASE_URL", f"http://127.0.0.1:{ports.sandbox}")
        env.setdefault("SANDBOX_ERP_URL", f"http://127.0.0.1:{ports.sandbox}")
        # Its own pictures are on loopback, which media downloads refuse outside development.
        env.setdefault("MEDIA_ALLOW_PRIVATE_NETWORKS", "true")
        env.setdefault("SANDBOX_ERP_DATABASE", str((state_dir or Path.cwd()) / SANDBOX_STATE_FILE))
        for ours, sandbox in (("ERP_WEBHOOK_SECRET", "SANDBOX_ERP_WEBHOOK_SECRET"),
                              ("ERP_API_TOKEN", "SANDBOX_ERP_API_TOKEN")):
            if env.get(sandbox) and not env.get(ours):
                env[ours] = env[sandbox]
        wanted.append("ERP_API_TOKEN")
    for name in wanted:
        if not env.get(name) and (remembered or {}).get(name):
            env[name] = (remembered or {})[name]
    made = {name: secrets.token_urlsafe(24) for name in wanted if not env.get(name)}
    env.update(made)
    return env, made


def shell_variables(ports: Ports, env: Mapping[str, str], database_url: str, amqp_url: str) -> dict[str, str]:
    """What a second shell needs to talk to this dev instance: the `export` lines and the env file."""
    variables = {"DATABASE_URL": database_url, "AMQP_URL": amqp_url, "INGRESS_PORT": str(ports.ingress),
                 "API_PORT": str(ports.api)}
    for name in ("ERP_BASE_URL", "SANDBOX_ERP_URL", "CONSOLE_USER", *SECRETS):
        if env.get(name):
            variables[name] = env[name]
    return variables
