"""The sandbox ERP as the orders benchmark runs it, `erp-sync migrate`, and the orders the ERP holds."""
from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.order_load import write_catalog
from bench.sandbox import private_database, private_vhost
from bench.servers import HOST, REPO, erp_sync, free_port, running, server_env
from erp_sync.shared.settings import Settings, load_settings

ADMIN_TIMEOUT_S = 60.0


def sandbox_env(catalog_file: Path, token: str) -> dict[str, str]:
    """The sandbox ERP's environment: only the catalog file's SKUs, in memory, sending no webhooks."""
    return os.environ | {
        "SANDBOX_ERP_GROUPS": "0",
        "SANDBOX_ERP_CATALOG_FILE": str(catalog_file),
        "SANDBOX_ERP_DATABASE": ":memory:",
        "SANDBOX_ERP_WEBHOOK_URL": "",
        "SANDBOX_ERP_API_TOKEN": token,
        "SANDBOX_ERP_ADMIN_TOKEN": token,
    }


def migrate(env: dict[str, str]) -> None:
    """`erp-sync migrate` against the run's own database and vhost, as an operator would run it."""
    subprocess.run(erp_sync("migrate"), env=env, cwd=REPO, capture_output=True, text=True, check=True, timeout=120)


def erp_orders(base_url: str, token: str, prefix: str) -> int:
    """How many orders with ids starting with `prefix` the ERP took (its admin API; it refuses repeats with 409)."""
    response = requests.get(f"{base_url}/admin/orders", headers={"Authorization": f"Bearer {token}"},
                            timeout=ADMIN_TIMEOUT_S)
    response.raise_for_status()
    return len({str(item["order_id"]) for item in response.json() if str(item["order_id"]).startswith(prefix)})


@dataclass(frozen=True)
class OrderStage:
    """What an orders benchmark runs against: the sandbox ERP, a private vhost and database, migrated."""

    work_dir: Path
    skus: list[str]
    erp_url: str
    token: str
    amqp_url: str
    settings: Settings
    env: dict[str, str]
    erp_pid: int


def order_stage(stack: ExitStack, skus: int, stock: int, extra_env: dict[str, str], *, erp_keep_alive: bool = False,
                **settings: Any) -> OrderStage:
    """Start the sandbox ERP with `skus` SKUs of `stock` each, make and migrate a vhost and database; gone with `stack`.

    `erp_keep_alive`: the sandbox keeps connections alive (`--keep-alive`), else it closes each after its answer.
    """
    token, secret = secrets.token_hex(16), secrets.token_hex(24)
    work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="erp-sync-bench-")))
    catalog = write_catalog(work_dir / "catalog.json", skus, stock)
    erp_port = free_port()
    erp_url = f"http://{HOST}:{erp_port}"
    erp = stack.enter_context(running("sandbox-erp", erp_sync("sandbox-erp", "--port", str(erp_port),
                                                            *(["--keep-alive"] if erp_keep_alive else [])),
                                      sandbox_env(work_dir / "catalog.json", token), erp_port, work_dir))
    amqp_url = stack.enter_context(private_vhost(load_settings().amqp_url, load_settings().retry_delays_ms))
    database_url = stack.enter_context(private_database(load_settings().database_url))
    run_settings = load_settings(amqp_url=amqp_url, database_url=database_url, erp_base_url=erp_url,
                                 erp_api_token=token, **settings)
    env = server_env(run_settings, secret, work_dir / "metrics") | {
        "ERP_BASE_URL": erp_url, "ERP_API_TOKEN": token} | extra_env
    migrate(env)
    return OrderStage(work_dir, catalog, erp_url, token, amqp_url, run_settings, env, erp.pid)
