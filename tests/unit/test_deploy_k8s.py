"""deploy/k8s: one Deployment per worker of the registry, scaled by KEDA on exactly the queues it consumes.

Read in-process from the YAML files (rendering with kustomize and the schema checks are in
tests/e2e/deploy, as they start kubectl).
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import yaml

from erp_sync.shared.errors import ConfigurationError
from erp_sync.shared.settings import Settings, load_settings
from erp_sync.shared.topology import ORDERS_PUSH_QUEUE
from erp_sync.workers.erp_http import longest_quick_pauses_s
from erp_sync.workers.registry import WORKERS, ConsumingWorker
from tests.support.deploy_files import (
    DEPLOY, K8S, config_map_data, dockerfile_stages, load_script, manifests, pod_environments, secret_settings,
)

generate = load_script("k8s/generate.py")
BASE = manifests(K8S / "base")
DEPLOYMENTS = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "Deployment"}
SCALED = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "ScaledObject"}
SECRET_SETTINGS = secret_settings()
PODS = [d for d in BASE if d["kind"] in {"Deployment", "Job"}]
DEFAULTS = Settings.model_construct()


def containers(document):
    return document["spec"]["template"]["spec"]["containers"]


def test_the_committed_worker_manifests_are_what_the_generator_writes():
    assert (K8S / "base" / "workers.yaml").read_text() == generate.render(), "run `make manifests` and commit"


def test_there_is_one_deployment_per_worker_running_that_worker():
    workers = {name.removeprefix("erp-sync-worker-"): d for name, d in DEPLOYMENTS.items()
               if name.startswith("erp-sync-worker-")}

    assert set(workers) == set(WORKERS)
    assert all(containers(d)[0]["args"] == ["worker", name] for name, d in workers.items())


def test_keda_scales_every_consuming_worker_on_exactly_the_queues_it_consumes():
    consumed = {name: {w.queue.name} | ({ORDERS_PUSH_QUEUE.name} if name == "orders" else set())
                for name, w in WORKERS.items() if isinstance(w, ConsumingWorker)}
    declared = {q["name"] for q in json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())["queues"]}

    triggered = {name.removeprefix("erp-sync-worker-"): {t["metadata"]["queueName"] for t in so["spec"]["triggers"]}
                 for name, so in SCALED.items() if name.startswith("erp-sync-worker-")}

    assert triggered == consumed
    assert set().union(*triggered.values()) <= declared
    for name in triggered:
        so = SCALED[f"erp-sync-worker-{name}"]
        assert so["spec"]["scaleTargetRef"]["name"] in DEPLOYMENTS
        assert all(t["type"] == "rabbitmq" and t["authenticationRef"]["name"] == "erp-sync-rabbitmq"
                   for t in so["spec"]["triggers"])


def test_keda_can_reach_every_pod_before_a_queue_is_half_full():
    # The trigger counts ready messages; the queue refuses publishes at its bound (messages, or bytes
    # of the worker's large messages): every pod must be asked for well before that.
    for name, so in SCALED.items():
        worker = name.removeprefix("erp-sync-worker-")
        if worker not in generate.SIZING:
            continue
        sizing = generate.SIZING[worker]
        holds = min(DEFAULTS.queue_max_length, DEFAULTS.queue_max_bytes // sizing.large_message_bytes)
        for trigger in so["spec"]["triggers"]:
            assert int(trigger["metadata"]["value"]) * so["spec"]["maxReplicaCount"] <= holds / 2, (name, trigger)


def mebibytes(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity.removesuffix("Mi")) * 2**20


@pytest.mark.parametrize(("variables", "prefetch"), [
    ({}, 2 * 2 * 100),  # 2 rounds of CATALOG_BATCH_CONCURRENCY batches of WORKER_BATCH_SIZE
    ({"catalog_batch_concurrency": 1, "worker_batch_size": 20, "webhook_max_body_bytes": 2**20}, 200),
    ({"worker_batch_size": 200, "worker_prefetch": 50}, 2 * 2 * 200),
])
def test_a_catalog_pod_holds_every_body_its_prefetch_lets_in_at_the_door_s_largest(variables, prefetch):
    # given the settings, the bodies RabbitMQ may hand a catalog pod unacked, each as large as the door lets in
    settings = Settings.model_construct(**variables)
    held = prefetch * settings.webhook_max_body_bytes

    # when the manifests are written for them
    document = next(d for d in yaml.safe_load_all(generate.render(settings))
                    if d and d["metadata"]["name"] == "erp-sync-worker-catalog" and d["kind"] == "Deployment")
    limit = mebibytes(containers(document)[0]["resources"]["limits"]["memory"])

    # then its limit holds them, and about 250 MB for the decoded batches and the process, no more
    assert WORKERS["catalog"].prefetch_of(settings) == prefetch
    assert held + 250 * 10**6 <= limit < held + 250 * 10**6 + 2**20


def test_the_committed_catalog_limit_holds_400_bodies_of_5_mib():
    limit = containers(DEPLOYMENTS["erp-sync-worker-catalog"])[0]["resources"]["limits"]["memory"]

    # a bulk load of 1.7 MB bodies took a pod held at its prefetch to 524 MB, past 512 Mi
    assert mebibytes(limit) >= 400 * 5 * 2**20 + 250 * 10**6


def test_a_worker_without_a_queue_runs_as_one_pod_and_is_not_scaled():
    scheduled = [name for name, w in WORKERS.items() if not isinstance(w, ConsumingWorker)]

    for name in scheduled:
        assert DEPLOYMENTS[f"erp-sync-worker-{name}"]["spec"]["replicas"] == 1
        assert f"erp-sync-worker-{name}" not in SCALED


def test_the_edges_scale_on_cpu_and_keep_a_pod_through_disruptions():
    budgets = {d["metadata"]["name"] for d in BASE if d["kind"] == "PodDisruptionBudget"}
    services = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "Service"}

    for role, port, needs in (("ingress", 8000, "broker"), ("api", 8001, "database")):
        name = f"erp-sync-{role}"
        container = containers(DEPLOYMENTS[name])[0]
        # each out of service only when what it serves with is down
        assert container["readinessProbe"]["httpGet"]["path"] == f"/readyz?needs={needs}"
        assert container["resources"]["requests"]["cpu"]
        assert [t["type"] for t in SCALED[name]["spec"]["triggers"]] == ["cpu"]
        assert SCALED[name]["spec"]["minReplicaCount"] >= 2 and name in budgets
        assert services[name]["spec"]["ports"][0]["port"] == port


def test_the_edges_leave_the_service_before_they_stop_and_finish_their_requests_within_the_grace():
    from erp_sync.ingress.serve import GRACEFUL_TIMEOUT_S

    for name in ("erp-sync-ingress", "erp-sync-api"):
        pod = DEPLOYMENTS[name]["spec"]["template"]["spec"]
        delay = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert delay >= 5 and pod["terminationGracePeriodSeconds"] >= delay + GRACEFUL_TIMEOUT_S + 5, name


def test_the_orders_worker_is_given_time_to_finish_its_pushes_and_the_sweep_its_run():
    worst_push_s = DEFAULTS.erp_quick_retries * (DEFAULTS.erp_connect_timeout_s + DEFAULTS.erp_read_timeout_s) \
        + longest_quick_pauses_s(DEFAULTS.erp_quick_retries, DEFAULTS.erp_quick_retry_base_s)
    grace = {name: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for name, d in DEPLOYMENTS.items()}

    assert grace["erp-sync-worker-orders"] - 5 > worst_push_s  # WORKER_STOP_TIMEOUT_S, below
    assert grace["erp-sync-worker-reconcile"] > DEFAULTS.reconcile_max_duration_s
    assert all(seconds >= 30 for seconds in grace.values())
    # and the process's own bound after SIGTERM reaches as far, short of the SIGKILL: with the
    # default 25 s, a worker gave up the sweep and the pushes its grace period allowed
    for name in WORKERS:
        deployment = DEPLOYMENTS[f"erp-sync-worker-{name}"]
        bound = {v["name"]: v.get("value") for v in containers(deployment)[0]["env"]}["WORKER_STOP_TIMEOUT_S"]
        assert float(bound) == deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] - 5, name
        assert name != "reconcile" or float(bound) > DEFAULTS.reconcile_max_duration_s


def test_prometheus_scrapes_every_worker_and_the_ingress_not_the_token_guarded_api():
    # the API's /metrics wants the storefront's token, which annotations cannot give; it serves the
    # ingress's figures
    for name, deployment in DEPLOYMENTS.items():
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        scraped = annotations.get("prometheus.io/scrape") == "true"
        assert scraped == (name != "erp-sync-api"), name
        if name.startswith("erp-sync-worker-"):
            assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("9100", "/metrics")


@pytest.mark.parametrize("document", PODS, ids=lambda d: d["metadata"]["name"])
def test_every_secret_comes_from_the_secret_and_every_variable_is_a_setting(document):
    for container in containers(document):
        for variable in container.get("env", []):
            assert variable["name"].lower() in Settings.model_fields
            if variable["name"] in SECRET_SETTINGS:
                assert "value" not in variable and variable["valueFrom"]["secretKeyRef"]["name"] == "erp-sync"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert document["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def secret_variables(document) -> dict[str, dict]:
    return {v["name"]: v["valueFrom"]["secretKeyRef"] for c in containers(document) for v in c.get("env", [])
            if "secretKeyRef" in v.get("valueFrom", {})}


def test_the_secret_settings_are_the_settings_typed_secret():
    assert {"ERP_WEBHOOK_SECRET", "ERP_API_TOKEN", "STOREFRONT_API_TOKEN", "ALERT_SMTP_PASSWORD",
            "CONSOLE_PASSWORD", "CONSOLE_TOKEN"} <= SECRET_SETTINGS


def test_every_secret_setting_reaches_a_pod_from_the_secret():
    mapped = set().union(*(secret_variables(document) for document in PODS))

    assert SECRET_SETTINGS - mapped == set()


@pytest.mark.parametrize("document", PODS, ids=lambda d: d["metadata"]["name"])
def test_every_process_may_mail_its_alerts_and_only_the_api_serves_the_console(document):
    # every process installs alert mail, and refuses ALERT_SMTP_USER (ConfigMap) without its password
    variables = secret_variables(document)
    console = {"CONSOLE_USER", "CONSOLE_PASSWORD", "CONSOLE_TOKEN"}

    assert variables["ALERT_SMTP_PASSWORD"] == {"name": "erp-sync", "key": "alert-smtp-password", "optional": True}
    if document["metadata"]["name"] == "erp-sync-api":
        assert all(variables[name]["optional"] is True for name in console)
    else:
        assert not variables.keys() & console


def test_a_worker_gets_the_erp_token_only_when_it_talks_to_the_erp():
    for name, worker in WORKERS.items():
        variables = {v["name"] for v in containers(DEPLOYMENTS[f"erp-sync-worker-{name}"])[0]["env"]}
        assert ("ERP_API_TOKEN" in variables) == worker.needs_erp
        assert not variables & {"ERP_WEBHOOK_SECRET", "STOREFRONT_API_TOKEN"}


def test_the_settings_of_the_config_maps_are_settings_and_no_secret():
    kustomization = manifests(K8S / "base" / "kustomization.yaml")[0]
    literals = [entry.split("=", 1)[0] for entry in kustomization["configMapGenerator"][0]["literals"]]
    env_file = (K8S / "overlays" / "production" / "settings.env").read_text().splitlines()
    names = literals + [line.split("=", 1)[0] for line in env_file if line and not line.startswith("#")]

    assert {name for name in names if name.lower() not in Settings.model_fields} == set()
    assert not set(names) & SECRET_SETTINGS


def test_the_pods_run_as_the_user_the_image_is_built_for():
    production = next(stage for stage in dockerfile_stages() if stage.name == "production")
    uid, _, gid = production.arguments("USER")[-1].partition(":")

    for document in (d for d in BASE if d["kind"] in {"Deployment", "Job"}):
        context = document["spec"]["template"]["spec"]["securityContext"]
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)


def test_the_erp_route_lets_through_every_body_erp_sync_accepts():
    route = manifests(K8S / "overlays" / "production" / "erp-route.yaml")[0]
    limit = route["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}

    assert int(limit[:-1]) * units[limit[-1].lower()] > DEFAULTS.webhook_max_body_bytes


def start_checks(args: list[str], settings: Settings) -> None:
    """What the process checks at start, past loading its settings (as test_deploy.py does for compose)."""
    if args[0] == "ingress":
        settings.webhook_secrets()
    elif args[0] == "api":
        settings.storefront_tokens()
    elif args[0] == "worker" and WORKERS[args[1]].needs_erp:
        settings.erp_credentials(f"the {args[1]} worker")


@pytest.mark.parametrize("target", ["base", "overlays/production"])
def test_every_pod_starts_with_the_environment_it_is_given(target, monkeypatch):
    # given each pod's environment: its ConfigMap, its values and a stand-in for each key of the Secret
    environments = pod_environments(K8S / target)
    assert {name for name in DEPLOYMENTS} <= environments.keys()

    for name, (args, environment) in environments.items():
        # when the process reads it, and nothing else
        for variable in Settings.model_fields:
            monkeypatch.delenv(variable.upper(), raising=False)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)

        # then its settings load and its checks at start pass (the ERP's workers exited 2 on the base)
        try:
            start_checks(args, load_settings())
        except ConfigurationError as exc:
            pytest.fail(f"{name}: {exc}")


def test_production_names_its_erp_in_place_of_the_base_s_stand_in():
    base = config_map_data(K8S / "base")["ERP_BASE_URL"]
    production = config_map_data(K8S / "overlays" / "production")["ERP_BASE_URL"]

    assert urlsplit(base).hostname.endswith(".invalid")
    assert production != base
