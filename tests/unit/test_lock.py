"""The lock files cover setup.cfg: every requirement pinned inside its range, every pin hashed.

requirements.lock is what the image installs, requirements-sandbox.lock what its sandbox target
adds, requirements-dev.lock what `make install` (and so CI) installs; `make lock` makes all three
from setup.cfg.
"""
from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
DEV_EXTRAS = ("test", "sandbox")
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")


def requirements(*extras: str) -> list[Requirement]:
    """What setup.cfg asks for: install_requires, plus the named extras."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.strip().startswith("#")]


def pins(lock: str) -> dict[str, tuple[Version, int]]:
    """Each pinned name of a lock file with its version and how many hashes follow it."""
    # One requirement per logical line: join the backslash continuations, drop the comments.
    text = re.sub(r"\\\n", " ", (REPO / lock).read_text())
    found: dict[str, tuple[Version, int]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        pin = PIN.match(line)
        assert pin, f"{lock}: not an exact pin: {line[:80]}"
        found[canonicalize_name(pin["name"])] = (Version(pin["version"]), len(HASH.findall(line)))
    return found


LOCKS = {"requirements.lock": (), "requirements-dev.lock": DEV_EXTRAS, "requirements-sandbox.lock": ("sandbox",)}


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_every_requirement_is_pinned_inside_its_range(lock, extras):
    pinned = pins(lock)

    for requirement in requirements(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{lock} lacks {requirement}: run `make lock`"
        version, _ = pinned[name]
        assert requirement.specifier.contains(version, prereleases=True), f"{lock}: {name}=={version} is outside {requirement}"


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_carries_a_hash(lock):
    unhashed = sorted(name for name, (_, hashes) in pins(lock).items() if hashes == 0)

    assert unhashed == []


@pytest.mark.parametrize("lock", ["requirements-dev.lock", "requirements-sandbox.lock"])
def test_the_other_locks_run_what_the_image_runs(lock):
    runtime, other = pins("requirements.lock"), pins(lock)

    assert {name: other.get(name, (None, 0))[0] for name in runtime} == {name: v for name, (v, _) in runtime.items()}


@pytest.mark.parametrize(("name", "last_vulnerable"), [
    ("requests", "2.32.3"),  # CVE-2024-47081: .netrc credentials sent to the wrong host
    ("urllib3", "2.6.3"),  # GHSA-mf9v-mfxr-j63j: decompression bombs through the streaming API
])
def test_the_floors_stand_above_the_known_advisories(name, last_vulnerable):
    ranges = {canonicalize_name(r.name): r.specifier for r in requirements()}

    assert not ranges[name].contains(last_vulnerable)
