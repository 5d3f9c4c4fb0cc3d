"""deploy/k8s rendered by kustomize (kubectl's own) and every object checked by a real validator, offline.

Kubernetes' kinds against the schemas of kubernetes-validate, KEDA's against its vendored CRDs, all
strict: a field the schema does not know is an error, as a misspelt field would otherwise be
dropped by the API server without a word.
"""
from __future__ import annotations

import copy
import re

import jsonschema
import kubernetes_validate
import pytest

from tests.support.deploy_files import DEPLOY, K8S, REPO, crd_schema, kustomize

KUBERNETES = "1.37.0"
CRDS = {(api, kind): jsonschema.Draft7Validator(schema)
        for api, kind, schema in (crd_schema(path) for path in sorted((DEPLOY / "schemas" / "keda").glob("*.yaml")))}
TARGETS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}


class _Rendered(dict):
    # rendered on first use, not while pytest collects
    def __missing__(self, target):
        self[target] = kustomize(TARGETS[target])
        return self[target]


RENDERED = _Rendered()


def errors_of(document) -> list[str]:
    key = (document["apiVersion"], document["kind"])
    if key in CRDS:
        return [error.message for error in CRDS[key].iter_errors(document)]
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [exc.message]
    return []


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_is_valid_by_its_schema(target):
    invalid = {f"{d['kind']}/{d['metadata']['name']}": errors for d in RENDERED[target] if (errors := errors_of(d))}

    assert invalid == {}
    assert {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")} <= {
        (d["apiVersion"], d["kind"]) for d in RENDERED[target]}


@pytest.mark.parametrize(("kind", "path", "field"), [
    ("Deployment", ("spec", "template", "spec"), "terminationGracePeriod"),
    ("ScaledObject", ("spec",), "minReplicas"),
    ("NetworkPolicy", ("spec",), "ingres"),
])
def test_the_validators_catch_a_misspelt_field(kind, path, field):
    document = copy.deepcopy(next(d for d in RENDERED["production"] if d["kind"] == kind))
    place = document
    for key in path:
        place = place[key]
    place[field] = 1

    assert errors_of(document) != []


def test_production_puts_everything_in_its_namespace_on_a_pinned_image():
    documents = RENDERED["production"]
    images = {c["image"] for d in documents if d["kind"] in {"Deployment", "Job"}
              for c in d["spec"]["template"]["spec"]["containers"]}

    assert {d["metadata"].get("namespace") for d in documents} == {"erp-sync"}
    assert len(images) == 1 and ":" in images.pop()


def test_every_reference_between_objects_resolves():
    documents = RENDERED["production"]
    by_kind = {}
    for d in documents:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind["Deployment"].values()]

    def selects(selector):
        return any(selector.items() <= labels.items() for labels in pod_labels)

    for so in by_kind["ScaledObject"].values():
        assert so["spec"]["scaleTargetRef"]["name"] in by_kind["Deployment"]
        for trigger in so["spec"]["triggers"]:
            if "authenticationRef" in trigger:
                assert trigger["authenticationRef"]["name"] in by_kind["TriggerAuthentication"]
    for service in by_kind["Service"].values():
        assert selects(service["spec"]["selector"])
    for budget in by_kind["PodDisruptionBudget"].values():
        assert selects(budget["spec"]["selector"]["matchLabels"])
    for deployment in [*by_kind["Deployment"].values(), *by_kind["Job"].values()]:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in by_kind["ConfigMap"]
    route = by_kind["Ingress"]["erp-sync-webhooks"]["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["backend"]["service"]["name"]) for p in route] == [("/webhooks/erp", "erp-sync-ingress")]


def test_only_the_erp_route_reaches_the_webhook_and_only_the_shop_the_api():
    policies = {d["metadata"]["name"]: d["spec"] for d in RENDERED["production"] if d["kind"] == "NetworkPolicy"}

    assert policies["erp-sync-default-deny"].get("ingress") is None
    erp = policies["erp-sync-ingress-from-erp"]["ingress"]
    assert [peer["namespaceSelector"]["matchLabels"] for rule in erp for peer in rule["from"]] == [
        {"kubernetes.io/metadata.name": "ingress-nginx"}]
    shop = policies["erp-sync-api-from-storefront"]["ingress"]
    assert [peer["podSelector"]["matchLabels"] for rule in shop for peer in rule["from"]] == [
        {"erp-sync/client": "storefront"}]


def test_the_documented_first_step_applies_the_migrate_job_with_what_it_reads():
    # given the selector docs/production.md applies before the rest, at first install and upgrade
    steps = re.findall(r"kubectl apply -f /tmp/erp-sync\.yaml -l '([^']+)'", (REPO / "docs" / "production.md").read_text())
    assert len(steps) == 2 and len(set(steps)) == 1
    key, values = re.fullmatch(r"(\S+) in \(([^)]*)\)", steps[0]).groups()

    # when it selects from what production renders
    selected = {(d["kind"], d["metadata"]["name"]) for d in RENDERED["production"]
                if d["metadata"].get("labels", {}).get(key) in values.split(",")}

    # then the Job is there, and every ConfigMap it reads (the Secret is made by hand before):
    # without its ConfigMap, the Job's pod never started and the wait timed out
    [job] = [d for d in RENDERED["production"] if d["kind"] == "Job"]
    assert ("Job", job["metadata"]["name"]) in selected
    for container in job["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            assert ("ConfigMap", source["configMapRef"]["name"]) in selected
    # and nothing that would start before the migration
    assert not {kind for kind, _ in selected} & {"Deployment", "ScaledObject"}
