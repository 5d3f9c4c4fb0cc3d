"""The Dockerfile passes hadolint (the wheel the test extra installs), offline: no Docker engine here."""
from __future__ import annotations

import subprocess

from tests.support.deploy_files import DEPLOY, venv_tool


def test_hadolint_finds_nothing_in_the_dockerfile():
    linted = subprocess.run([venv_tool("hadolint"), "--no-color", str(DEPLOY / "Dockerfile")],
                            capture_output=True, text=True, check=False, timeout=60)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_would_catch_a_mistake(tmp_path):
    # the linter at work, not a binary that always says yes: an unpinned apt install and no USER
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM debian:bookworm\nRUN apt-get update && apt-get install -y curl\n")

    linted = subprocess.run([venv_tool("hadolint"), "--no-color", str(broken)],
                            capture_output=True, text=True, check=False, timeout=60)

    assert linted.returncode != 0 and "DL3008" in linted.stdout
