"""`erp-sync dev` makes the secrets nobody set, per run, and hands the same ones to every child."""
from __future__ import annotations

from erp_sync.cli.dev import Ports, dev_environment, role_environments, roles

PORTS = Ports(ingress=8000, api=8001, sandbox=8900)
MADE = {"ERP_WEBHOOK_SECRET", "ERP_API_TOKEN", "STOREFRONT_API_TOKEN"}


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

    assert set(made) == {"STOREFRONT_API_TOKEN"}
    assert (env["ERP_WEBHOOK_SECRET"], env["ERP_API_TOKEN"]) == ("mine-0123456789abcdef", "erp-0123456789abc")


def test_the_sandbox_variables_are_shared_with_erp_sync():
    # given the sandbox's own secrets set, erp-sync's not
    env, made = dev_environment(PORTS, {"SANDBOX_ERP_WEBHOOK_SECRET": "sandbox-hmac-0123456789",
                                        "SANDBOX_ERP_API_TOKEN": "sandbox-api-0123456789"})

    # then the ingress verifies what the sandbox signs, and the workers call the sandbox with its token
    assert (env["ERP_WEBHOOK_SECRET"], env["ERP_API_TOKEN"]) == ("sandbox-hmac-0123456789", "sandbox-api-0123456789")
    assert set(made) == {"STOREFRONT_API_TOKEN"}


def test_without_the_sandbox_no_erp_token_is_invented():
    env, made = dev_environment(Ports(ingress=8000, api=8001, sandbox=None), {})

    assert "ERP_API_TOKEN" not in env and set(made) == {"ERP_WEBHOOK_SECRET", "STOREFRONT_API_TOKEN"}


def test_with_metrics_port_set_each_worker_gets_a_port_of_its_own():
    # given METRICS_PORT set for the whole of dev
    env, _ = dev_environment(PORTS, {"METRICS_PORT": "9100"})
    commands = roles(PORTS, env)

    # when each role's environment is made
    ports = {" ".join(command): role_env.get("METRICS_PORT")
             for command, role_env in zip(commands, role_environments(commands, env), strict=True)}

    # then the workers listen on 9100, 9101, ... and the others keep the setting they ignore
    worker_ports = [port for role, port in ports.items() if role.startswith("worker ")]
    assert worker_ports == [str(9100 + n) for n in range(len(worker_ports))] and len(worker_ports) == 5


def test_without_metrics_port_no_worker_gets_one():
    env, _ = dev_environment(PORTS, {})
    commands = roles(PORTS, env)

    assert all("METRICS_PORT" not in role_env for role_env in role_environments(commands, env))
