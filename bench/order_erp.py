"""The sandbox ERP as the orders benchmark runs it, `erp-sync migrate`, and the orders the ERP holds."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from bench.servers import REPO

ADMIN_TIMEOUT_S = 60.0


def erp_sync(*args: str) -> list[str]:
    """`erp-sync <args>` from this virtualenv."""
    script = Path(sys.executable).parent / "erp-sync"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "erp_sync", *args]


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
