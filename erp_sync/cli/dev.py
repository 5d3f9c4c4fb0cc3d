"""`erp-sync dev`: every process of erp-sync on this machine, started and stopped together."""
from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import FrameType

from erp_sync.cli.migrate import run_migrate
from erp_sync.shared.settings import Settings
from erp_sync.workers.registry import WORKERS

logger = logging.getLogger(__name__)



def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = commands.add_parser("dev", help="migrate, then run the sandbox ERP, the ingress and every worker here")
    dev.add_argument("--port", type=int, default=None, help="port of the ingress (default: INGRESS_PORT)")
    dev.add_argument("--api-port", type=int, default=None, help="port of the storefront API (default: API_PORT)")
    dev.add_argument("--sandbox-port", type=int, default=8900, help="port of the sandbox ERP (default 8900)")
    dev.add_argument("--no-sandbox", action="store_true", help="do not start the sandbox ERP")
    dev.set_defaults(run=run_dev)


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    run_migrate(settings, args)
    ports = Ports(args.port or settings.ingress_port, args.api_port or settings.api_port,
                  None if args.no_sandbox else args.sandbox_port)
    return run_all(ports)


@dataclass(frozen=True)
class Ports:
    """Where `dev` serves the ERP's door, the storefront's API and (unless None) the sandbox ERP."""

    ingress: int
    api: int
    sandbox: int | None = 8900


def dev_environment(ports: Ports, environ: Mapping[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of every child, and the secrets made for this run (those not set already).

    The sandbox and erp-sync are pointed at each other and share one webhook secret and one ERP
    token: the sandbox falls back on ERP_WEBHOOK_SECRET and ERP_API_TOKEN, and its own variables,
    when set, are taken for erp-sync's.
    """
    env = dict(os.environ if environ is None else environ)
    env.setdefault("SANDBOX_ERP_WEBHOOK_URL", f"http://127.0.0.1:{ports.ingress}/webhooks/erp")
    wanted = ["ERP_WEBHOOK_SECRET", "STOREFRONT_API_TOKEN"]
    if ports.sandbox is not None:
        env.setdefault("ERP_BASE_URL", f"http://127.0.0.1:{ports.sandbox}")
        for ours, sandbox in (("ERP_WEBHOOK_SECRET", "SANDBOX_ERP_WEBHOOK_SECRET"),
                              ("ERP_API_TOKEN", "SANDBOX_ERP_API_TOKEN")):
            if env.get(sandbox) and not env.get(ours):
                env[ours] = env[sandbox]
        wanted.append("ERP_API_TOKEN")
    made = {name: secrets.token_urlsafe(24) for name in wanted if not env.get(name)}
    env.update(made)
    return env, made


def roles(ports: Ports, env: dict[str, str]) -> list[list[str]]:
    """The command line of every process `dev` runs."""
    # The workers that talk to the ERP would refuse to start without it.
    commands = [["ingress", "--port", str(ports.ingress)], ["api", "--port", str(ports.api)]] + [
        ["worker", worker.name] for worker in WORKERS.values() if env.get("ERP_BASE_URL") or not worker.needs_erp
    ]
    if ports.sandbox is not None:
        commands.append(["sandbox-erp", "--port", str(ports.sandbox)])
    return commands


def role_environments(commands: list[list[str]], env: dict[str, str]) -> list[dict[str, str]]:
    """Each role's environment: with METRICS_PORT set, each worker listens on the next port from it."""
    base = int(env.get("METRICS_PORT") or 0)
    workers = [command for command in commands if command[0] == "worker"]
    # One port for several workers would stop all but the first at start.
    return [env | {"METRICS_PORT": str(base + workers.index(command))} if base and command in workers else env
            for command in commands]


def _start(role: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    logger.info("starting %s", " ".join(role))
    return subprocess.Popen([sys.executable, "-m", "erp_sync", *role], env=env)


def run_all(ports: Ports, poll_s: float = 0.5) -> int:
    """Run every role until one exits or a signal arrives; then stop the rest. Returns the exit code."""
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        logger.info("signal %d: stopping every process", signum)
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    env, made = dev_environment(ports)
    commands = roles(ports, env)
    children = {" ".join(role): _start(role, role_env)
                for role, role_env in zip(commands, role_environments(commands, env), strict=True)}
    if made:
        # Made per run, never a well-known value that anyone could sign or read with; printed so
        # another shell can sign webhooks, call the sandbox's admin API and read the API.
        logger.info("secrets made for this run; in another shell: export %s",
                    " ".join(f"{name}={value}" for name, value in made.items()))
    logger.info("the ERP's door: http://127.0.0.1:%d/webhooks/erp", ports.ingress)
    logger.info("the storefront API: http://127.0.0.1:%d/api/v1/ with Authorization: Bearer %s",
                ports.api, env["STOREFRONT_API_TOKEN"].split(",")[0])
    exit_code = 0
    while not stopping:
        for role, child in children.items():
            if child.poll() is not None:
                logger.error("%s exited with %d; stopping the others", role, child.returncode)
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
