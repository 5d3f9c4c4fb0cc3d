"""What a vhost of the real broker holds, in RabbitMQ's definitions form (rabbitmqctl or the management API)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any
from urllib.parse import quote

import requests

# The fields an export and erp-sync's definitions both carry (an export leaves `internal` out).
FIELDS = {
    "exchanges": ("name", "vhost", "type", "durable", "auto_delete", "arguments"),
    "queues": ("name", "vhost", "type", "durable", "auto_delete", "arguments"),
    "bindings": ("source", "vhost", "destination", "destination_type", "routing_key", "arguments"),
}


def exported(vhost: str) -> dict[str, Any]:
    """Every definition of the broker (all vhosts) as `rabbitmqctl export_definitions` or the API give it."""
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if management or not shutil.which("rabbitmqctl"):
        response = requests.get(f"{management}/api/definitions/{quote(vhost, safe='')}",
                                auth=("guest", "guest"), timeout=30)
        response.raise_for_status()
        per_vhost: dict[str, Any] = response.json()
        return {kind: [{**item, "vhost": vhost} for item in per_vhost.get(kind, [])] for kind in FIELDS}
    out = subprocess.run(["rabbitmqctl", "-q", "export_definitions", "-", "--format", "json"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return dict(json.loads(out))


def comparable(definitions: dict[str, Any], vhost: str) -> dict[str, list[dict[str, Any]]]:
    """The exchanges, queues and bindings of one vhost (its default exchange aside), sorted, shared fields only."""
    return {
        kind: sorted(
            ({field: item.get(field) for field in fields} for item in definitions.get(kind, [])
             if item.get("vhost") == vhost and item.get("name", "-") and item.get("source", "-")),
            key=lambda item: json.dumps(item, sort_keys=True))
        for kind, fields in FIELDS.items()
    }


def load(definitions: dict[str, Any], vhost: str) -> None:
    """Load definitions into the broker as an operator would (`rabbitmqctl import_definitions`, or the API).

    The broker may finish an import after the command returns: poll what it holds before relying on it.
    """
    management = os.environ.get("RABBITMQ_MANAGEMENT_URL")
    if management or not shutil.which("rabbitmqctl"):
        requests.post(f"{management}/api/definitions/{quote(vhost, safe='')}", json=definitions,
                      auth=("guest", "guest"), timeout=60).raise_for_status()
        return
    # from standard input: a file of ours may not be readable by the broker's own user
    subprocess.run(["rabbitmqctl", "-q", "import_definitions"], input=json.dumps(definitions),
                   capture_output=True, text=True, check=True, timeout=120)
