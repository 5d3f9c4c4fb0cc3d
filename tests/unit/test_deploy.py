"""deploy/: the compose file runs every process with the settings each needs, from one image.

No Docker engine here, so these read the files: what `docker compose up` would start, with what
environment, and what the image installs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from erp_sync.ingress.serve import GRACEFUL_TIMEOUT_S
from erp_sync.shared.settings import Settings
from erp_sync.workers.erp_http import longest_quick_pauses_s
from erp_sync.workers.registry import WORKERS
from tests.support.deploy_files import Stage, dockerfile_stages, load_script, secret_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
COMPOSE_SCHEMA = jsonschema.Draft7Validator(json.loads((REPO / "deploy" / "schemas" / "compose-spec.json").read_text()))
OURS = {name: service for name, service in SERVICES.items() if service.get("build", {}).get("target") == "production"}

class _Stages(list[Stage]):
    def __getitem__(self, key):  # by position or by name
        return next(s for s in self if s.name == key) if isinstance(key, str) else super().__getitem__(key)


STAGES = _Stages(dockerfile_stages())
REQUIRED = re.compile(r"^\$\{(?P<name>\w+):\?[^}]*\}$")
DEFAULTED = re.compile(r"^\$\{(?P<name>\w+):-(?P<default>[^}]*)\}$")


def test_compose_runs_the_migration_the_door_the_api_and_every_worker():
    commands = {tuple(service["command"]) for service in OURS.values()}

    assert {("migrate",), ("ingress",), ("api",)} <= commands
    assert {command[1] for command in commands if command[0] == "worker"} == set(WORKERS)


def test_every_process_starts_only_after_the_migration_succeeded():
    for name, service in OURS.items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def healthcheck_command(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    return test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])


def test_postgres_is_healthy_once_it_takes_tcp_connections():
    # On a fresh volume the image's first server, which runs its init scripts, listens on its socket
    # alone: pg_isready over the socket passed and the migration met a refused connection.
    command = healthcheck_command("postgres").split()

    assert command[0] == "pg_isready" and command[command.index("-h") + 1] == "127.0.0.1"
    assert "start_period" in SERVICES["postgres"]["healthcheck"]


def test_rabbitmq_is_healthy_once_its_listeners_take_connections():
    # `rabbitmq-diagnostics ping` passes while the node boots, before AMQP logins are accepted
    command = healthcheck_command("rabbitmq")

    assert "check_running" in command and "check_port_connectivity" in command and " ping" not in command
    assert "start_period" in SERVICES["rabbitmq"]["healthcheck"]


def test_the_migration_is_run_again_when_it_fails_a_few_times_not_forever():
    # it is safe to run again (shared/migrate.py; the Kubernetes Job reruns it as well): a database
    # or broker not yet taking connections is waited out, and the others wait for its success
    policy, _, tries = OURS["migrate"]["restart"].partition(":")

    assert policy == "on-failure" and 0 < int(tries) <= 20
    assert OURS["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                             "rabbitmq": {"condition": "service_healthy"}}


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_variable_compose_sets_is_a_setting(name):
    unknown = {key for key in OURS[name]["environment"] if key.lower() not in Settings.model_fields}

    assert unknown == set()


@pytest.mark.parametrize("name", sorted(OURS))
def test_the_environment_compose_gives_starts_the_process(name, monkeypatch):
    # given the operator set what compose insists on (${VAR:?...}) and nothing else
    environment = OURS[name]["environment"]
    for key, value in environment.items():
        required, defaulted = REQUIRED.match(str(value)), DEFAULTED.match(str(value))
        monkeypatch.setenv(key, "operator-supplied-value-1234" if required
                           else defaulted["default"] if defaulted else str(value))

    # then the settings load, and the checks each process makes at start pass
    settings = Settings()
    settings.webhook_secrets()
    settings.storefront_tokens()
    settings.erp_credentials("a worker")
    # and the database and broker it names are services of the same compose file
    assert {urlsplit(settings.database_url).hostname, urlsplit(settings.amqp_url).hostname} <= set(SERVICES)
    # and the ERP it talks to by default is the compose file's sandbox
    assert urlsplit(settings.erp_base_url).hostname in SERVICES


def test_compose_is_valid_by_the_compose_specification():
    errors = list(COMPOSE_SCHEMA.iter_errors(COMPOSE))

    assert [error.message for error in errors] == []


def test_the_compose_schema_catches_a_mistake():
    # a misspelt key and a grace period without its unit
    broken = {"services": {"ingress": {**OURS["ingress"], "stop_grace_period": 60, "port": ["8000:8000"]}}}

    assert len(list(COMPOSE_SCHEMA.iter_errors(broken))) >= 2


def test_the_sandbox_erp_is_its_own_target_and_fires_its_webhooks_at_the_ingress():
    sandbox = SERVICES["sandbox-erp"]
    webhook = urlsplit(sandbox["environment"]["SANDBOX_ERP_WEBHOOK_URL"])

    assert sandbox["build"]["target"] == "sandbox" and sandbox["command"][0] == "sandbox-erp"
    assert webhook.hostname == "ingress" and webhook.path == "/webhooks/erp"
    assert sandbox["environment"]["ERP_WEBHOOK_SECRET"] == OURS["ingress"]["environment"]["ERP_WEBHOOK_SECRET"]


def test_rabbitmq_runs_with_its_management_plugin():
    assert SERVICES["rabbitmq"]["image"].endswith("-management")


def test_the_image_installs_the_import_root_and_every_folder_it_links_but_the_sandbox():
    linked = {path.name for path in (REPO / "erp_sync").iterdir() if path.is_symlink()}
    build = STAGES["build"]
    copied = {rest.split()[0] for rest in build.arguments("COPY") if re.fullmatch(r"(\w+) \./\1", rest)}

    assert copied == {"erp_sync"} | linked - {"sandbox_erp"}
    assert "sandbox_erp ./sandbox_erp" in STAGES["sandbox-build"].arguments("COPY")


@pytest.mark.parametrize(("stage", "lock"), [("build", "requirements.lock"),
                                             ("sandbox-build", "requirements-sandbox.lock")])
def test_each_target_installs_its_lock_with_every_hash_checked_then_erp_sync_without_resolving(stage, lock):
    runs = STAGES[stage].arguments("RUN")

    assert any("--require-hashes" in run and f"-r {lock}" in run for run in runs)
    assert any("pip install --no-deps" in run for run in runs)


@pytest.mark.parametrize("target", ["production", "sandbox"])
def test_a_final_stage_runs_erp_sync_unprivileged_from_the_built_environment_alone(target):
    stage = STAGES[target]

    # no pip, apt or compiler at work in it: only the finished virtual environment copied in
    assert not any(re.search(r"\b(pip|apt-get|apk|gcc|make)\b", run) for run in stage.arguments("RUN"))
    assert stage.base == STAGES[0].base
    assert any(copy.startswith("--from=") for copy in stage.arguments("COPY"))
    assert stage.arguments("USER")[-1] not in {"0", "root"}
    assert stage.exec_form("ENTRYPOINT") == ["erp-sync"]
    assert stage.exec_form("HEALTHCHECK") == ["python", "/opt/erp-sync/healthcheck.py"]


def test_a_plain_build_makes_the_production_image_without_the_sandbox():
    assert STAGES[-1].name == "production"
    assert all("--from=sandbox" not in copy for copy in STAGES["production"].arguments("COPY"))


def test_the_image_holds_no_secret():
    secrets = secret_settings()
    env = " ".join(rest for stage in STAGES for rest in stage.arguments("ENV") + stage.arguments("ARG"))

    assert {name for name in secrets if name in env} == set()


def test_the_orders_worker_is_given_time_to_finish_its_pushes_on_stop():
    # a push against a hanging ERP: ERP_QUICK_RETRIES tries of connect + read timeout, and the pauses
    # between them, each up to the longest Retry-After a quick try honours
    defaults = Settings()
    worst_push_s = defaults.erp_quick_retries * (defaults.erp_connect_timeout_s + defaults.erp_read_timeout_s) \
        + longest_quick_pauses_s(defaults.erp_quick_retries, defaults.erp_quick_retry_base_s)
    grace = OURS["orders"]["stop_grace_period"]

    assert grace.endswith("s") and int(grace[:-1]) > worst_push_s
    # and the process's own bound reaches as far, short of the SIGKILL (by default it gave up at 25 s)
    assert worst_push_s < float(OURS["orders"]["environment"]["WORKER_STOP_TIMEOUT_S"]) < int(grace[:-1])


def test_the_reconcile_worker_is_given_time_to_finish_its_sweep_on_stop():
    grace = OURS["reconcile"]["stop_grace_period"]
    bound = float(OURS["reconcile"]["environment"]["WORKER_STOP_TIMEOUT_S"])

    assert Settings().reconcile_max_duration_s < bound < int(grace.removesuffix("s"))


@pytest.mark.parametrize("name", sorted(OURS.keys() - {"migrate"}))
def test_every_process_is_given_longer_than_its_own_bound_to_finish_on_stop(name):
    # Docker's default of 10 s cut short a batch, a download or a request under way
    service = OURS[name]
    grace_s = int(service.get("stop_grace_period", "10s").removesuffix("s"))
    bound_s = (GRACEFUL_TIMEOUT_S if service["command"][0] in ("ingress", "api")
               else float(service.get("environment", {}).get("WORKER_STOP_TIMEOUT_S", Settings().worker_stop_timeout_s)))

    assert bound_s < grace_s


@pytest.mark.parametrize("name", sorted(WORKERS))
def test_every_worker_serves_its_metrics_where_the_image_healthcheck_asks(name):
    environment = OURS[name]["environment"]
    port = DEFAULTED.match(environment["METRICS_PORT"])["default"]

    assert int(port) > 0 and environment["METRICS_HOST"] == "0.0.0.0"
    assert load_script("healthcheck.py").health_url(["worker", name], {"METRICS_PORT": port}) == (
        f"http://127.0.0.1:{port}/healthz")
