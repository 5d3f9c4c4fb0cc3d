"""deploy/: the compose file runs every process with the settings each needs, from one image.

No Docker engine here, so these read the files: what `docker compose up` would start, with what
environment, and what the image installs.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from erp_sync.shared.settings import Settings
from erp_sync.workers.registry import WORKERS

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
OURS = {name: service for name, service in SERVICES.items() if "build" in service}
REQUIRED = re.compile(r"^\$\{(?P<name>\w+):\?[^}]*\}$")
OPTIONAL = re.compile(r"^\$\{\w+:-(.*)\}$")


def test_compose_runs_the_migration_the_door_the_api_and_every_worker():
    commands = {tuple(service["command"]) for service in OURS.values()}

    assert {("migrate",), ("ingress",), ("api",)} <= commands
    assert {command[1] for command in commands if command[0] == "worker"} == set(WORKERS)


def test_every_process_starts_only_after_the_migration_succeeded():
    for name, service in OURS.items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_variable_compose_sets_is_a_setting(name):
    unknown = {key for key in OURS[name]["environment"] if key.lower() not in Settings.model_fields}

    assert unknown == set()


@pytest.mark.parametrize("name", sorted(OURS))
def test_the_environment_compose_gives_starts_the_process(name, monkeypatch):
    # given the operator set what compose insists on (${VAR:?...}) and nothing else
    environment = OURS[name]["environment"]
    for key, value in environment.items():
        required = REQUIRED.match(str(value))
        optional = OPTIONAL.match(str(value))  # ${VAR:-default}: compose gives the default
        monkeypatch.setenv(key, "operator-supplied-value-1234" if required and key != "ERP_BASE_URL"
                           else "https://erp.example.test" if required else optional[1] if optional else str(value))

    # then the settings load, and the checks each process makes at start pass
    settings = Settings()
    settings.webhook_secrets()
    settings.storefront_tokens()
    settings.erp_credentials()
    # and the database and broker it names are services of the same compose file
    assert {urlsplit(settings.database_url).hostname, urlsplit(settings.amqp_url).hostname} <= set(SERVICES)


def test_the_image_installs_the_import_root_and_every_folder_it_links_but_the_sandbox():
    linked = {path.name for path in (REPO / "erp_sync").iterdir() if path.is_symlink()}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO / "deploy" / "Dockerfile").read_text(), re.MULTILINE))

    assert copied == {"erp_sync"} | linked - {"sandbox_erp"}


def test_the_orders_worker_is_given_time_to_finish_its_pushes_on_stop():
    # a push against a hanging ERP: ERP_QUICK_RETRIES tries of connect + read timeout, and back-offs
    defaults = Settings()
    worst_push_s = defaults.erp_quick_retries * (defaults.erp_connect_timeout_s + defaults.erp_read_timeout_s) + 2
    grace = OURS["orders"]["stop_grace_period"]

    assert grace.endswith("s") and int(grace[:-1]) > worst_push_s
