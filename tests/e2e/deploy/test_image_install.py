"""The image's build stage rehearsed on this machine (no Docker engine here): its very COPY and RUN steps.

A fresh virtual environment gets requirements.lock with every hash checked, wheels only, then
erp-sync without resolving anything; the result runs `erp-sync` and has no sandbox ERP in it. pip
reaches its package index for the locked files (its cache makes a second run quick).
"""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.deploy_files import StepFailed, dockerfile_stages, rehearse_build_stage


STAGES = {stage.name: stage for stage in dockerfile_stages()}


def rehearse(stage, root):
    try:
        return rehearse_build_stage(STAGES[stage], root)[0]
    except StepFailed as failed:
        if failed.index_unreachable and not os.environ.get("CI"):
            pytest.skip(f"pip could not reach its package index: {failed.command}")
        raise


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    return tmp_path_factory.mktemp("image")


@pytest.fixture(scope="module")
def image_venv(image_root):
    # the sandbox target's steps go on in the same folders (its stage is FROM build): they run last
    return rehearse("build", image_root)


@pytest.fixture(scope="module")
def sandbox_venv(image_venv, image_root):
    venv = rehearse("sandbox-build", image_root)
    (venv / "bin" / "trustme-applied").touch()
    return venv


def run(venv, *args):
    # from the environment's own folder: `python -c` would import erp_sync from the checkout otherwise
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, check=False,
                          timeout=60, cwd=venv, env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin"})


def production(venv):
    assert not (venv / "bin" / "trustme-applied").exists(), "the sandbox target's steps ran before this test"
    return venv


@pytest.mark.slow
def test_the_image_runs_erp_sync_and_every_command_of_production(image_venv):
    helped = run(production(image_venv), "erp-sync", "--help")

    assert helped.returncode == 0, helped.stderr
    for command in ("migrate", "ingress", "api", "worker", "reconcile", "dlq", "orders"):
        assert command in helped.stdout
    imported = run(image_venv, "python", "-c", "import erp_sync.ingress, erp_sync.workers.registry, granian, psycopg")
    assert imported.returncode == 0, imported.stderr


@pytest.mark.slow
def test_the_image_has_no_sandbox_erp_and_no_test_tool(image_venv):
    sandbox = run(production(image_venv), "python", "-c", "import erp_sync.sandbox_erp")
    tools = run(image_venv, "python", "-c", "import trustme")

    assert sandbox.returncode != 0 and "No module named 'erp_sync.sandbox_erp'" in sandbox.stderr
    for command in (("sandbox-erp", "--port", "8080"), ("send-webhook", "--help")):
        refused = run(image_venv, "erp-sync", *command)
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr.startswith("erp-sync: the sandbox ERP is not installed: pip install 'erp-sync[sandbox]'")
    assert tools.returncode != 0 and "No module named 'trustme'" in tools.stderr
    assert not (image_venv / "bin" / "pytest").exists()


@pytest.mark.slow
def test_the_image_settings_refuse_to_start_without_their_secrets(image_venv):
    # the ingress of a bare image: no secret baked in, so it stops at once and says which
    started = run(production(image_venv), "erp-sync", "ingress")

    assert started.returncode != 0 and "ERP_WEBHOOK_SECRET" in started.stderr


@pytest.mark.slow
def test_the_sandbox_target_adds_the_stand_in_erp_from_its_own_lock(sandbox_venv):
    # last in this module: it installs into the environment the tests above read
    helped = run(sandbox_venv, "erp-sync", "sandbox-erp", "--help")
    imported = run(sandbox_venv, "python", "-c", "import erp_sync.sandbox_erp, trustme")

    assert helped.returncode == 0 and "--tls" in helped.stdout, helped.stderr
    assert imported.returncode == 0, imported.stderr
