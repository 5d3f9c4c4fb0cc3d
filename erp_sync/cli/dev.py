"""`erp-sync dev [--story]`: every process of erp-sync on this machine, started and stopped together."""
from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from types import FrameType

import requests

from erp_sync.shared.arguments import port_number
from erp_sync.cli.dev_env import Ports, dev_environment, port_problems, shell_variables
from erp_sync.cli.dev_processes import Output, Processes
from erp_sync.cli.exits import EXIT_CONFIGURATION, EXIT_FAILURE, EXIT_OK
from erp_sync.shared.env_file import env_file_path, read_env_file, write_env_file
from erp_sync.shared.settings import Settings
from erp_sync.workers.registry import WORKERS

READY_TIMEOUT_S = 120.0  # a first start on a busy laptop


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = commands.add_parser("dev", help="migrate, then run the sandbox ERP, the ingress, the API and every worker here")
    dev.add_argument("--port", type=port_number, default=None, help="port of the ingress (default: INGRESS_PORT)")
    dev.add_argument("--api-port", type=port_number, default=None, help="port of the storefront API (default: API_PORT)")
    dev.add_argument("--sandbox-port", type=port_number, default=8900, help="port of the sandbox ERP (default 8900)")
    dev.add_argument("--no-sandbox", action="store_true", help="do not start the sandbox ERP")
    dev.add_argument("--story", action="store_true",
                     help="play the spec's story against it, one line a step, then stop (exit 1 on a failed step)")
    dev.set_defaults(run=run_dev)


def roles(ports: Ports, env: dict[str, str]) -> dict[str, list[str]]:
    """The command line of every process `dev` runs, by the tag its lines carry."""
    commands = {"ingress": ["ingress", "--port", str(ports.ingress)], "api": ["api", "--port", str(ports.api)]}
    # The workers that talk to the ERP would refuse to start without it.
    commands |= {worker.name: ["worker", worker.name] for worker in WORKERS.values()
                 if env.get("ERP_BASE_URL") or not worker.needs_erp}
    if ports.sandbox is not None:
        commands["sandbox"] = ["sandbox-erp", "--port", str(ports.sandbox)]
    return commands


def metrics_ports(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, str]:
    """With METRICS_PORT set, each worker's own port from it on: one port for all would stop all but one."""
    base = int(env.get("METRICS_PORT") or 0)
    workers = [name for name, arguments in commands.items() if arguments[0] == "worker"]
    return {name: str(base + index) for index, name in enumerate(workers)} if base else {}


def run_dev(settings: Settings, args: argparse.Namespace) -> int:
    output = Output()
    if args.story and args.no_sandbox:
        output.line("dev", "--story plays against the sandbox ERP: drop --no-sandbox")
        return EXIT_CONFIGURATION
    ports = Ports(args.port or settings.ingress_port, args.api_port or settings.api_port,
                  None if args.no_sandbox else args.sandbox_port)
    problems = port_problems(ports)
    for problem in problems:
        output.line("dev", problem)
    if problems:
        return EXIT_CONFIGURATION
    env_file = env_file_path()
    env, made = dev_environment(ports, remembered=read_env_file(env_file) if env_file else {})
    env |= {"DATABASE_URL": settings.database_url, "AMQP_URL": settings.amqp_url}
    started = time.monotonic()
    processes = Processes(output, env)
    stopping = _stop_on_signals(output)
    try:
        migrated = processes.run("migrate", ["migrate"])
        if migrated != EXIT_OK:
            return migrated
        commands = roles(ports, env)
        ports_of = metrics_ports(commands, env)
        for name, arguments in commands.items():
            processes.start(name, arguments, {"METRICS_PORT": ports_of[name]} if name in ports_of else None)
        if not _wait_ready(ports, processes, stopping, output):
            return EXIT_FAILURE if processes.exited() or not stopping else EXIT_OK
        variables = shell_variables(ports, env, settings.database_url, settings.amqp_url)
        if args.story:
            env_file = None  # the story's instance ends with it: a running one's file stays its own
        if env_file:
            write_env_file(env_file, variables)
        if ports.sandbox is not None:
            _publish_catalog(env, output)
        _banner(output, ports, env, made, variables, env_file, time.monotonic() - started)
        if args.story:
            from erp_sync.cli.story import play

            return play(env, ports, output, should_stop=lambda: bool(stopping) or processes.exited() is not None)
        return _supervise(processes, stopping, output)
    finally:
        processes.stop()


def _stop_on_signals(output: Output) -> list[int]:
    """A list that receives the signal's number when SIGINT or SIGTERM arrives (truthy: stop)."""
    stopping: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        output.line("dev", f"{signal.Signals(signum).name}: stopping every process")
        stopping.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stopping


def _supervise(processes: Processes, stopping: list[int], output: Output, poll_s: float = 0.5) -> int:
    while not stopping:
        gone = processes.exited()
        if gone is not None:
            output.line("dev", f"{gone[0]} exited with {gone[1]}; stopping the others")
            return gone[1] or EXIT_FAILURE
        time.sleep(poll_s)
    return EXIT_OK


def _wait_ready(ports: Ports, processes: Processes, stopping: list[int], output: Output) -> bool:
    """Wait until the ingress and the API answer /readyz and the sandbox serves; False if one failed."""
    checks = {f"http://127.0.0.1:{ports.ingress}/readyz": "ingress", f"http://127.0.0.1:{ports.api}/readyz": "api"}
    if ports.sandbox is not None:
        checks[f"http://127.0.0.1:{ports.sandbox}/media/ready.png"] = "sandbox"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while checks and not stopping and time.monotonic() < deadline:
        gone = processes.exited()
        if gone is not None:
            output.line("dev", f"{gone[0]} exited with {gone[1]} before it was ready; stopping the others")
            return False
        for url in [url for url in checks if _answers(url)]:
            output.line("dev", f"{checks.pop(url)} is ready")
        time.sleep(0.2)
    for name in [] if stopping else checks.values():
        output.line("dev", f"{name} was not ready within {READY_TIMEOUT_S:.0f} s; stopping")
    return not checks and not stopping


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _publish_catalog(env: dict[str, str], output: Output) -> None:
    """Have the sandbox send its whole catalog, so the shop starts with every product and figure."""
    try:
        answer = requests.post(f"{env['SANDBOX_ERP_URL']}/admin/catalog", json={}, timeout=30,
                               headers={"Authorization": f"Bearer {_admin_token(env)}"})
        answer.raise_for_status()
        counts = answer.json()
        output.line("dev", f"the sandbox ERP sends its catalog: {counts['groups']} groups,"
                           f" {counts['variants']} SKUs (catalog.update webhooks)")
    except (requests.RequestException, ValueError, KeyError) as exc:
        output.line("dev", f"the sandbox ERP did not send its catalog ({exc}); try: erp-sync sandbox-erp publish-catalog")


def _admin_token(env: dict[str, str]) -> str:
    return env.get("SANDBOX_ERP_ADMIN_TOKEN") or env.get("SANDBOX_ERP_API_TOKEN") or env["ERP_API_TOKEN"]


def _banner(output: Output, ports: Ports, env: dict[str, str], made: dict[str, str], variables: dict[str, str],
            env_file: Path | None, took_s: float) -> None:
    door, api = f"http://127.0.0.1:{ports.ingress}", f"http://127.0.0.1:{ports.api}"
    lines = [f"ready in {took_s:.1f} s",
             f"  the ERP's door       {door}/webhooks/erp   ({door}/metrics, {door}/openapi.json)",
             f"  the storefront API   {api}/api/v1/   ({api}/metrics, {api}/openapi.json)"]
    if env.get("CONSOLE_USER") and env.get("CONSOLE_PASSWORD"):
        lines.append(f"  the operator console {api}/console   (user {env['CONSOLE_USER']}, password {env['CONSOLE_PASSWORD']})")
    if ports.sandbox is not None:
        lines.append(f"  the sandbox ERP      {env['SANDBOX_ERP_URL']}   (state kept in {env['SANDBOX_ERP_DATABASE']})")
    lines.append(f"  secrets made for this run: {', '.join(made) or 'none (all set, or kept from the last run)'}")
    for name in ("ERP_WEBHOOK_SECRET", "ERP_API_TOKEN", "STOREFRONT_API_TOKEN"):
        if env.get(name):
            lines.append(f"  {name:<22} {env[name]}")
    if env_file:
        lines.append(f"  written to {env_file}: erp-sync run in this folder reads it (`source {env_file}` for curl)")
    lines.append("  in another shell: export " + " ".join(f"{name}={value}" for name, value in variables.items()))
    for text in lines:
        output.line("dev", text)
