"""`erp-sync dev` makes the secrets nobody set, per run, and hands the same ones to every child."""
from __future__ import annotations

import re
from pathlib import Path

from erp_sync.cli.dev_env import Ports, dev_environment
from erp_sync.cli.dev import metrics_ports, roles

METRICS_DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
PORTS = Ports(ingress=8000, api=8001, sandbox=8900)
MADE = {"ERP_WEBHOOK_SECRET", "ERP_API_TOKEN", "STOREFRONT_API_TOKEN", "CONSOLE_PASSWORD"}


def test_unset_secrets_are_made_and_differ_from_run_to_run():
    # when dev prepares two runs with nothing set
    first_env, first = dev_environment(PORTS, {})
    second_env, second = dev_environment(PORTS, {})

    # then each run makes its own webhook secret, ERP token and storefront token, long enough for the checks
    assert set(first) == set(second) == MADE
    assert all(first[name] != second[name] for name in MADE)
    assert all(len(value) >= 16 for value in first.values())
    assert {name: first_env[name] for name in MADE} == first


def test_secrets_already_set_are_kept_and_not_reported_as_made():
    env, made = dev_environment(PORTS, {"ERP_WEBHOOK_SECRET": "mine-0123456789abcdef", "ERP_API_TOKEN": "erp-0123456789abc"})

    assert set(made) == {"STOREFRONT_API_TOKEN", "CONSOLE_PASSWORD"}
    assert (env["ERP_WEBHOOK_SECRET"], env["ERP_API_TOKEN"]) == ("mine-0123456789abcdef", "erp-0123456789abc")


def test_the_sandbox_variables_are_shared_with_erp_sync():
    # given the sandbox's own secrets set, erp-sync's not
    env, made = dev_environment(PORTS, {"SANDBOX_ERP_WEBHOOK_SECRET": "sandbox-hmac-0123456789",
                                        "SANDBOX_ERP_API_TOKEN": "sandbox-api-0123456789"})

    # then the ingress verifies what the sandbox signs, and the workers call the sandbox with its token
    assert (env["ERP_WEBHOOK_SECRET"], env["ERP_API_TOKEN"]) == ("sandbox-hmac-0123456789", "sandbox-api-0123456789")
    assert set(made) == {"STOREFRONT_API_TOKEN", "CONSOLE_PASSWORD"}


def test_without_the_sandbox_no_erp_token_is_invented():
    env, made = dev_environment(Ports(ingress=8000, api=8001, sandbox=None), {})

    assert "ERP_API_TOKEN" not in env and set(made) == {"ERP_WEBHOOK_SECRET", "STOREFRONT_API_TOKEN", "CONSOLE_PASSWORD"}


def test_secrets_of_the_last_run_are_kept_so_its_exports_and_the_sandbox_state_stay_valid():
    remembered = {"ERP_WEBHOOK_SECRET": "last-run-0123456789ab", "STOREFRONT_API_TOKEN": "last-run-api-0123456",
                  "CONSOLE_PASSWORD": "last-run-console-0123"}

    env, made = dev_environment(PORTS, {}, remembered=remembered)

    assert set(made) == {"ERP_API_TOKEN"}
    assert env["ERP_WEBHOOK_SECRET"] == "last-run-0123456789ab"


def test_dev_lets_media_reach_its_own_sandbox_keeps_its_state_and_retries_soon(tmp_path):
    env, _ = dev_environment(PORTS, {}, state_dir=tmp_path)

    assert env["MEDIA_ALLOW_PRIVATE_NETWORKS"] == "true"
    assert env["SANDBOX_ERP_DATABASE"] == str(tmp_path / ".erp-sync-sandbox.sqlite")
    assert env["SANDBOX_ERP_URL"] == env["ERP_BASE_URL"] == "http://127.0.0.1:8900"
    assert int(env["ORDER_RETRY_INTERVAL_S"]) <= 10
    assert env["ERP_SYNC_ENV_FILE"] == ""


def test_a_setting_of_the_user_wins_over_the_dev_defaults():
    env, _ = dev_environment(PORTS, {"ORDER_RETRY_INTERVAL_S": "900", "MEDIA_ALLOW_PRIVATE_NETWORKS": "false"})

    assert (env["ORDER_RETRY_INTERVAL_S"], env["MEDIA_ALLOW_PRIVATE_NETWORKS"]) == ("900", "false")


def test_the_operator_console_opens_with_a_user_and_a_password_made_for_the_run():
    env, made = dev_environment(PORTS, {})

    assert env["CONSOLE_USER"] == "operator" and made["CONSOLE_PASSWORD"] == env["CONSOLE_PASSWORD"]


def test_a_console_token_of_the_user_replaces_the_password():
    env, made = dev_environment(PORTS, {"CONSOLE_TOKEN": "my-console-token-0123"})

    assert "CONSOLE_PASSWORD" not in made and "CONSOLE_USER" not in env


def test_with_metrics_port_set_each_worker_gets_a_port_of_its_own():
    # given METRICS_PORT set for the whole of dev
    env = {"METRICS_PORT": "9100", "ERP_BASE_URL": "http://127.0.0.1:8900"}

    # when dev gives out the workers' ports
    given = metrics_ports(roles(PORTS, env), env)

    # then the five workers listen on 9100 to 9104, and no other process is given one
    assert sorted(given.values()) == [str(port) for port in range(9100, 9105)]
    assert set(given) == {name for name, arguments in roles(PORTS, env).items() if arguments[0] == "worker"}


def test_without_metrics_port_no_worker_gets_one():
    assert metrics_ports(roles(PORTS, {}), {}) == {}


def test_the_metrics_doc_names_the_ports_dev_gives():
    # given the ports docs/metrics.md gives the workers by hand and in its scrape configuration
    doc = METRICS_DOC.read_text()
    base = re.search(r"`METRICS_PORT=(\d+) erp-sync dev`", doc)
    assert base, "docs/metrics.md does not say how erp-sync dev counts the workers' ports"
    by_hand = {name: port for port, name in re.findall(r"`METRICS_PORT=(\d+) erp-sync worker (\w+)`", doc)}
    scraped = dict(re.findall(r"job_name: erp-sync-(\w+)\n\s+static_configs: \[\{targets: \[\"127\.0\.0\.1:(\d+)\"", doc))
    env = {"METRICS_PORT": base[1], "ERP_BASE_URL": "http://127.0.0.1:8900"}

    # when dev gives out the workers' ports from the same METRICS_PORT
    given = metrics_ports(roles(PORTS, env), env)

    # then every worker port the doc names is the one dev gives that worker
    scraped_workers = {name: port for name, port in scraped.items() if name not in {"ingress", "api"}}
    assert by_hand and scraped_workers
    assert by_hand == {name: given[name] for name in by_hand}
    assert scraped_workers == {name: given[name] for name in scraped_workers}
