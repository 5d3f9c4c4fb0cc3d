"""Reading deploy/ as the tools that use it would: the Dockerfile's stages, the scripts it ships."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass
class Stage:
    """One FROM ... AS name stage: its base and its instructions, continuations joined."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON array of the stage's last `keyword` instruction (HEALTHCHECK: after its CMD)."""
        text = self.arguments(keyword)[-1]
        return list(json.loads(text[text.index("["):]))


def dockerfile_stages(path: Path = DEPLOY / "Dockerfile") -> list[Stage]:
    """The stages in order; the last is what `docker build` without --target makes."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(name.strip(), base.strip()))
        elif stages:
            stages[-1].instructions.append((word.upper(), rest.strip()))
    return stages


def load_script(relative: str) -> ModuleType:
    """A script of deploy/ (not a package) imported as a module, to test its functions."""
    path = DEPLOY / relative
    spec = importlib.util.spec_from_file_location(f"deploy_{path.stem}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up by name while the script runs
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def venv_tool(name: str) -> str:
    """A command the test extra installs beside this interpreter (hadolint, kubectl)."""
    tool = Path(sys.executable).parent / name
    assert tool.exists(), f"{tool} is missing: `make install` installs the test extra"
    return str(tool)


K8S = DEPLOY / "k8s"


def _holds_secret(annotation: object) -> bool:
    from typing import get_args

    from pydantic import SecretStr

    return annotation is SecretStr or any(_holds_secret(arg) for arg in get_args(annotation))


def secret_settings() -> set[str]:
    """The variables of every secret-typed setting, and the URLs that carry the database's and broker's passwords."""
    from erp_sync.shared.settings import Settings

    typed = {name.upper() for name, field in Settings.model_fields.items() if _holds_secret(field.annotation)}
    return typed | {"DATABASE_URL", "AMQP_URL"}


def manifests(path: Path) -> list[dict[str, object]]:
    """The documents of a YAML file (or of every YAML file of a folder but its kustomization)."""
    import yaml

    files = sorted(p for p in path.glob("*.yaml") if p.name != "kustomization.yaml") if path.is_dir() else [path]
    return [doc for file in files for doc in yaml.safe_load_all(file.read_text()) if doc]


CONFIG_MAP = "erp-sync-config"
# What the Secret's keys stand in for: the URLs as the settings check them, a token of enough characters.
SECRET_STAND_INS = {"database-url": "postgresql+psycopg://erp_sync:stand-in@postgres:5432/erp_sync",
                    "amqp-url": "amqp://erp_sync:stand-in@rabbitmq:5672/erp-sync"}
SECRET_STAND_IN = "stand-in-secret-0123456789"


def config_map_data(kustomization: Path) -> dict[str, str]:
    """The data kustomize gives the ConfigMap erp-sync-config at a kustomization's folder: its bases'
    first (the resources that are folders), then its own generator's, merged or replacing them."""
    import yaml

    spec = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
    data: dict[str, str] = {}
    for resource in spec.get("resources", []):
        if (kustomization / resource).is_dir():
            data.update(config_map_data((kustomization / resource).resolve()))
    for generator in (g for g in spec.get("configMapGenerator", []) if g["name"] == CONFIG_MAP):
        if generator.get("behavior", "create") != "merge":
            data = {}
        lines = list(generator.get("literals", []))
        for env_file in generator.get("envs", []):
            lines += [line for line in (kustomization / env_file).read_text().splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
        data.update(line.split("=", 1) for line in lines)
    return data


def pod_environments(kustomization: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each Deployment's and Job's container arguments and environment, as rendered at a kustomization:
    the ConfigMap's data, the literal values, a stand-in for each required key of the Secret (an
    optional one left out, as a Secret without it gives). An overlay's patches must leave the
    environment alone: it is read from the resources."""
    import yaml

    spec = yaml.safe_load((kustomization / "kustomization.yaml").read_text())
    for patch in spec.get("patches", []):
        assert "env" not in (kustomization / patch["path"]).read_text(), f"{patch['path']}: read its environment here"
    data = config_map_data(kustomization)
    environments: dict[str, tuple[list[str], dict[str, str]]] = {}
    for document in _resources(kustomization):
        if document["kind"] not in {"Deployment", "Job"}:
            continue
        container = document["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        environment: dict[str, str] = {}
        for source in container.get("envFrom", []):
            assert source["configMapRef"]["name"] == CONFIG_MAP
            environment.update(data)
        for variable in container.get("env", []):
            if "value" in variable:
                environment[variable["name"]] = variable["value"]
            elif not (key := variable["valueFrom"]["secretKeyRef"]).get("optional"):
                environment[variable["name"]] = SECRET_STAND_INS.get(key["key"], SECRET_STAND_IN)
        environments[document["metadata"]["name"]] = (container["args"], environment)  # type: ignore[index]
    return environments


def _resources(kustomization: Path) -> list[dict[str, object]]:
    """The documents of a kustomization's resources, its bases' included."""
    import yaml

    documents: list[dict[str, object]] = []
    for resource in yaml.safe_load((kustomization / "kustomization.yaml").read_text()).get("resources", []):
        path = (kustomization / resource).resolve()
        documents += _resources(path) if path.is_dir() else manifests(path)
    return documents


def kustomize(path: Path) -> list[dict[str, object]]:
    """What `kubectl kustomize` (kustomize built into the kubectl wheel) renders, offline."""
    import subprocess

    import yaml

    rendered = subprocess.run([venv_tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True,
                              check=False, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def crd_schema(path: Path, strict: bool = True) -> tuple[str, str, dict[str, object]]:
    """apiVersion, kind and the JSON schema of a vendored CustomResourceDefinition's stored version.

    strict: like kubeconform's -strict, a field the CRD does not know is an error (Kubernetes
    would silently prune it), except where the CRD keeps unknown fields on purpose.
    """
    import yaml

    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = version["schema"]["openAPIV3Schema"]
    if strict:
        _forbid_unknown(schema)
    return f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"], schema


def _forbid_unknown(schema: object) -> None:
    if isinstance(schema, dict):
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        for value in schema.values():
            _forbid_unknown(value)
    elif isinstance(schema, list):
        for value in schema:
            _forbid_unknown(value)


# pip's words when it could not reach its index at all (as opposed to a hash or resolution failure).
UNREACHABLE_INDEX = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
                     "Network is unreachable", "Could not fetch URL")


def rehearse_build_stage(stage: Stage, root: Path) -> tuple[Path, list[str]]:
    """Run a build stage's COPY and RUN steps on this machine, /opt/erp-sync moved under `root`.

    Returns the virtual environment made and the output of each step. What Docker would copy is
    copied (symbolic links kept as links); each RUN goes through the shell in the copied folder.
    A stage built FROM another is rehearsed after it with the same `root`.
    """
    import os
    import shutil
    import subprocess

    source, venv = root / "src", root / "opt-erp-sync"
    source.mkdir(parents=True, exist_ok=True)  # a later stage FROM an earlier one goes on in its folder
    outputs: list[str] = []
    for word, rest in stage.instructions:
        if word == "COPY" and not rest.startswith("--from"):
            *paths, _destination = rest.split()
            for path in paths:
                origin = REPO / path
                if origin.is_dir():
                    shutil.copytree(origin, source / origin.name, symlinks=True)
                else:
                    shutil.copy2(origin, source / origin.name)
        elif word == "RUN":
            command = rest.replace("/opt/erp-sync", str(venv))
            done = subprocess.run(command, shell=True, cwd=source, capture_output=True, text=True, check=False,
                                  timeout=600, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
            outputs.append(done.stdout + done.stderr)
            if done.returncode != 0:
                raise StepFailed(command, outputs[-1])
    return venv, outputs


class StepFailed(Exception):
    """A RUN step of the rehearsal exited non-zero."""

    def __init__(self, command: str, output: str) -> None:
        super().__init__(f"{command}\n{output[-3000:]}")
        self.command, self.output = command, output

    @property
    def index_unreachable(self) -> bool:
        return any(words in self.output for words in UNREACHABLE_INDEX)
